# CIFAR-style ResNet-18 classifiers for the 32-px digits classification set, at two widths:
# `resnet_student` (base width 8) and `resnet_teacher` (base width 32). Refer to them with
# {{_base_.resnet_student}} / {{_base_.resnet_teacher}}.


def _classifier(width):
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=10,
            mean=[127.5, 127.5, 127.5],
            std=[64.0, 64.0, 64.0],
            to_rgb=True),
        backbone=dict(
            type='ResNet_CIFAR', depth=18, stem_channels=width, base_channels=width,
            num_stages=4, out_indices=(3, ), style='pytorch',
            # zero-initialised residual gammas learned far slower from scratch here
            zero_init_residual=False),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=10,
            in_channels=8 * width,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            topk=(1, )))


resnet_student = _classifier(8)
resnet_teacher = _classifier(32)
