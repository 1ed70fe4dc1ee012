"""demo - the Gradio app (`python -m demo.app`)."""
