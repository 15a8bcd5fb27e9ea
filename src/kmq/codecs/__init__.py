"""Writers and readers of kmq's output formats (one module per format)."""
