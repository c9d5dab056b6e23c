"""Pure figure functions: result summaries in, ``plotly.graph_objects.Figure`` out."""
