"""lprnet_tf: train, evaluate and deploy license-plate recognizers (LPRNet family) with TF/Keras."""
from setuptools import find_namespace_packages, setup

with open("README.md", encoding="utf-8") as f:
    README = f.read()

setup(
    name="lprnet_tf",
    version="0.1.0",
    description="Train, evaluate and deploy license-plate recognizers (the LPRNet family) with TensorFlow/Keras",
    long_description=README,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_namespace_packages(include=["lprnet_tf", "lprnet_tf.*"], exclude=["*.__pycache__"]),
    package_data={"lprnet_tf": ["synth/fonts/*", "pretrained/*/*", "pretrained/*/*/*", "plates/*.yaml"]},
    include_package_data=True,
    install_requires=[
        # tensorflow-cpu (CPU wheel, half the size) is the default; GPU users install tensorflow[and-cuda].
        "tensorflow-cpu>=2.16,<2.22; platform_machine=='x86_64'",
        "tensorflow>=2.16,<2.22; platform_machine!='x86_64'",
        "keras>=3.5,<3.16",
        "tensorboard>=2.16",
        "numpy>=1.26",
        "opencv-python-headless>=4.9",
        "albumentations>=2.0,<2.1",
        "absl-py>=2.0",
        "PyYAML>=6.0",
        "pillow>=10.0",
    ],
    extras_require={
        "tflite": ["ai-edge-litert>=1.2"],
        "test": ["pytest>=8", "pytest-xdist>=3.5"],  # make test runs the suite in 2 worker processes
        "jax": ["jax>=0.4.30"],
        # lprnet-export --onnx (converter: Keras' model.export(format="onnx") -> tf2onnx) and the ONNX Runtime
        # backend; checked with TF 2.21 / Keras 3.15.1 / numpy 2.4 (versions in constraints.txt)
        "onnx": ["tf2onnx>=1.17,<1.18", "onnx>=1.23,<1.24", "onnxruntime>=1.32,<1.33"],
    },
    entry_points={
        "console_scripts": [
            "lprnet-train=lprnet_tf.cli.train:main",
            "lprnet-evaluate=lprnet_tf.cli.evaluate:main",
            "lprnet-synth=lprnet_tf.cli.synth:main",
            "lprnet-info=lprnet_tf.cli.info:main",
            "lprnet-demo=lprnet_tf.cli.demo:main",
            "lprnet-package=lprnet_tf.cli.package:main",
            "lprnet-serve=lprnet_tf.cli.serve:main",
            "lprnet-export=lprnet_tf.cli.export:main",
            "lprnet-recognize=lprnet_tf.cli.recognize:main",
            "lprnet-data=lprnet_tf.cli.data:main",
        ]
    },
)
