#!/usr/bin/env python
"""Turn folders of real and GAN images into gfd's dataset layouts; a thin wrapper over
``python -m gfd prepare``.  See ``--help`` of each sub-command.

    python data_scripts/prepare_dataset.py attribution --out data/gan128 \\
        --source real=celeba,lsun_bedroom --source ProGAN=progan_celeba,progan_lsun \\
        --source MMDGAN=mmdgan_celeba,mmdgan_lsun --source SNGAN=sngan_celeba,sngan_lsun \\
        --source InfoMaxGAN=infomax_celeba,infomax_lsun            # 15000/1000/4000/4000 per class
    python data_scripts/prepare_dataset.py attribution --out data/gan128 --manifest sources.json
    python data_scripts/prepare_dataset.py detection --out data/forensynths \\
        --train progan_train --val progan_val --test CNN_synth_testset --categories airplane
"""
import sys

from gfd.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
