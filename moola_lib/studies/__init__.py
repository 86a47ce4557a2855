"""Studies: the research apparatus that validated the product, apart from it. The transfer protocol on
known answers (``validate`` and its ``validation_*`` modules, VALIDATION.md), learning curves over
labelled-set sizes (``curves``, ``curves_report``), the ceiling of the testbed (``ceiling``) and the simulated
labelling study (``labelling_study``, ``labelling_study_report``). Each runs as ``python -m
moola_lib.studies.NAME``. Nothing in the product imports this wing."""
