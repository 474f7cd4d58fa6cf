"""Installs the model/training package (code/avmatch) and the data preparation package
(data_preparation/avprep); the scripts stay runnable as files (python code/train.py)."""
from setuptools import setup

setup(
    name="avmatch",
    version="0.1.0",
    description=("Audio-visual matching with coupled 3D convolutional networks "
                 "(TensorFlow 2 port of Torfi et al., IEEE Access 2017)"),
    python_requires=">=3.9",
    packages=["avmatch", "avmatch.nets", "avprep"],
    package_dir={"avmatch": "code/avmatch", "avprep": "data_preparation/avprep"},
    install_requires=[line.strip() for line in open("requirements.txt")
                      if line.strip() and not line.startswith(("#", "pytest"))],
    extras_require={"test": ["pytest>=8"]},
    license="Apache-2.0",
)
