"""Metric Space: the standard evaluate widget for this metric."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("speaker_verification.py")
launch_gradio_widget(module)
