"""The page's code: what `app.py` wires into Gradio. Only this package (and `app.py`) imports gradio."""
