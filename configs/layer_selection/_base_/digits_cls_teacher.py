# Classifiers of the layer-selection study on the 32-px digits classification set, CIFAR-style
# ResNets whose first stage is strided too (strides 2, 2, 2, 2: maps of 16/8/4/2 px, a quarter of
# the cost of the configs/_base_/models/ classifiers, so the whole study fits on two CPU cores):
#   ls_cls_teacher: ResNet-34 at base width 16, 16 residual blocks (3, 4, 6, 3 per stage,
#                   widths 16/32/64/128);
#   ls_cls_student: ResNet-18 at base width 8, 8 residual blocks (2, 2, 2, 2, widths 8/16/32/64).
# Refer to them as {{_base_.ls_cls_teacher}} / {{_base_.ls_cls_student}}.


def _classifier(depth, width):
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=10,
            mean=[127.5, 127.5, 127.5],
            std=[64.0, 64.0, 64.0],
            to_rgb=True),
        backbone=dict(
            type='ResNet_CIFAR', depth=depth, stem_channels=width, base_channels=width,
            num_stages=4, strides=(2, 2, 2, 2), out_indices=(3, ), style='pytorch',
            zero_init_residual=False),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=10,
            in_channels=8 * width,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            topk=(1, )))


ls_cls_teacher = _classifier(34, 16)
ls_cls_student = _classifier(18, 8)

