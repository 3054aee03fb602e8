"""Train a feed-forward style network: python train.py method=fast style=wave.

    python train.py method=fast style=wave [data=coco|imagefolder|synthetic] [data.path=DIR]
        [trainer=default|gpu|ddp] [trainer.max_steps=N] [logger=wandb|csv|tensorboard|none]
        [trainer.precision=32|bf16-mixed|16-mixed] [compile=true] [channels_last=true]
        [seed=N trainer.deterministic=true] [ckpt_path=last|PATH] [hydra.run.dir=DIR]
    python train.py method=fast style=path/to/painting.jpg      (any image)
    python train.py -m style=wave,candy method.style_weight=1e5,3e5   (a sweep: every combination)
    python train.py trainer=ddp trainer.devices=4 [trainer.num_nodes=2]  (DDP; torchrun, SLURM)
    python train.py method=arbitrary data=painter_by_numbers data.style.path=DIR   (any style)

Every piece is a Hydra config group built with `hydra.utils.instantiate`: `data` (a
LightningDataModule), `method` (a LightningModule), `trainer`, `logger`, `callbacks` and
`checkpoint`; the run plumbing (W&B mode, atomic checkpoints, NaN stop, resume) is in
`nst.training`. The basic and improved methods optimise one image and have nothing to train: use
stylize.py.

The program lives in `nst.commands.train` (installed as `nst-train`); this file runs it.
"""

from nst.commands.train import cli

if __name__ == "__main__":
    cli()
