"""Studies: many trainings and dissections measured together (``unitscope study``); one module per study."""
