# mmdet's runtime, with kd_det imported and CPU-friendly logging for the small demo runs.
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
