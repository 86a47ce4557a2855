"""Labels: labelled windows for transfer. The labels files of both formats and the ``LabelledSet``
(``sets``), the row checks of a labels table (``rows``), self-contained OHLC windows (``windows``), the
labelled windows' time spans and what pretraining must exclude (``spans``), the embedded labelled set of the
testbed (``testbed``) and where an encoder came from and which labelled bars it has seen (``provenance``).
Imports ``pretraining``, ``features``, ``bars`` and ``util``."""
