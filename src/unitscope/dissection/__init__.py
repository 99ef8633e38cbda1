"""Network Dissection, exact and streaming: label every unit of a layer with the concept it detects."""
