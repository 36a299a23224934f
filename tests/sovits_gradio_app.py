"""A Gradio app written the way so-vits-svc 3.0's ``sovits_gradio.py`` is, against ``svc.VitsSvc``.

It uses only the original session API (``set_device``, ``loadCheckpoint``, ``hps.spk``,
``inference``) and Gradio calls that app used (Blocks, Tab, Row(visible=False), Audio with its
default numpy type, Dropdown, Slider, Button.click, ``gr.update``), to show that such an app runs
unchanged on Gradio 6.  ``tests/test_sovits3_api.py`` launches it in-process.

Run it by hand:  python tests/sovits_gradio_app.py [checkpoints_dir] [pretrain_dir]
"""

from __future__ import annotations

import os
import sys

import gradio as gr

from svc import VitsSvc


class VitsGradio:
    def __init__(self, checkpoints_dir: str = "checkpoints", pretrain_dir: str = "pretrain"):
        self.so = VitsSvc(device="cpu", pretrain_dir=pretrain_dir, checkpoints_dir=checkpoints_dir)
        self.lspk: list[str] = []
        self.modelPaths = sorted(d for d in os.listdir(checkpoints_dir)  # noqa: N815 (as in 3.0)
                                 if os.path.isdir(os.path.join(checkpoints_dir, d)))
        with gr.Blocks() as self.Vits:
            with gr.Tab("VoiceConversion"):
                with gr.Row(visible=False) as self.VoiceConversion:
                    with gr.Column():
                        with gr.Row():
                            with gr.Column():
                                self.srcaudio = gr.Audio(label="input audio")
                                self.btnVC = gr.Button("convert")
                            with gr.Column():
                                self.dsid = gr.Dropdown(label="target speaker", choices=self.lspk)
                                self.tran = gr.Slider(label="transpose", maximum=60, minimum=-60, step=1, value=0)
                                self.th = gr.Slider(label="slice threshold", maximum=32767, minimum=-32768,
                                                    step=0.1, value=-40)
                        with gr.Row():
                            self.VCOutputs = gr.Audio()
                self.btnVC.click(self.so.inference, inputs=[self.srcaudio, self.dsid, self.tran, self.th],
                                 outputs=[self.VCOutputs])
            with gr.Tab("SelectModel"):
                with gr.Column():
                    modelstrs = gr.Dropdown(label="model", choices=self.modelPaths, value=self.modelPaths[0],
                                            type="value")
                    devicestrs = gr.Dropdown(label="device", choices=["cpu", "cuda"], value="cpu", type="value")
                    btnMod = gr.Button("load model")  # noqa: N806 (as in 3.0)
                    btnMod.click(self.loadModel, inputs=[modelstrs, devicestrs],
                                 outputs=[self.dsid, self.VoiceConversion])

    def loadModel(self, path, device):  # noqa: N802 (as in 3.0)
        self.lspk = []
        self.so.set_device(device)
        self.so.loadCheckpoint(path)
        for spk, _sid in self.so.hps.spk.items():
            self.lspk.append(spk)
        VChange = gr.update(visible=True)  # noqa: N806
        SDChange = gr.update(choices=self.lspk, value=self.lspk[0])  # noqa: N806
        return [SDChange, VChange]


if __name__ == "__main__":
    grVits = VitsGradio(*sys.argv[1:3])
    grVits.Vits.launch()
