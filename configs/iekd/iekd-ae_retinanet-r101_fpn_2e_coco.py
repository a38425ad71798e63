# IE-KD stage 1 on COCO2017: one auto-encoder shared by the five FPN levels P3-P7 (`neck`, 256
# channels each) of the frozen RetinaNet R-101 teacher, encoder and decoder each three bias-free
# 3x3 convs with BatchNorm and LeakyReLU(0.1), 256 -> 32 channels, mean L1 reconstruction loss
# averaged over the levels; AdamW lr 1e-3, cosine, 2 epochs (not measured). Shared rather than
# one per level: the levels feed one shared head, so they live in one feature space, and a
# distill term builds its connector per level pair without knowing the level.
# Validation metric on val2017: recon/l1 (and recon/l2). The checkpoint holds the auto-encoder
# only. The teacher checkpoint is mmdet's R-101 1x model; download it first:
#   mkdir -p checkpoints && wget -P checkpoints https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.TeacherAutoEncoder',
    # all teacher weights come from teacher_ckpt: no ImageNet backbone initialisation
    teacher=dict(
        cfg_path='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py', backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth',
    autoencoders=dict(fpn=dict(layers='neck', factor_channels=32)),
    loss='l1')
val_evaluator = dict(_delete_=True, type='kd_det.ReconstructionMetric')
test_evaluator = val_evaluator
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
train_cfg = dict(max_epochs=2, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=2, eta_min=1e-5),
]
