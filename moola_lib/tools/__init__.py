"""Command-line tools: the benchmark (``bench``) and the prepared GPU check (``gpu_check``). They sit on top of
every wing and may import any of them; nothing in the library imports them. Their ``python -m`` entry points
are the thin modules ``moola_lib.bench`` and ``moola_lib.gpu_check`` (like ``moola_lib.run_notebook``)."""
