# The control classifier of the what-gets-distilled analysis (tools/analysis/what_distilled.py
# --control): a network unrelated to the digits teacher and students, trained alone on the digits
# classification set (AdamW, 30 epochs). ConvMixer ("Patches Are All You Need?",
# arXiv:2201.09792) at 96 channels and depth 6: 4x4-pixel patches, then six blocks of a
# residual 3x3 depthwise convolution and a 1x1 convolution with GELU and BatchNorm, all at one
# resolution (8x8 patches): no stages and no downsampling after the patch stem. 70 k parameters.
# Adversarial images crafted on it measure how much any network is fooled by transferred attacks,
# whatever it learned from the teacher.
_base_ = [
    '../_base_/datasets/digits_classification.py', '../_base_/schedules/digits_cls_adamw.py',
    '../_base_/digits_cls_runtime.py'
]
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=10,
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0],
        to_rgb=True),
    backbone=dict(
        type='ConvMixer',
        arch=dict(embed_dims=96, depth=6, patch_size=4, kernel_size=3)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=96,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
