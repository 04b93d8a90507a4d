# dual_swin_l_htc.py without HTC's semantic branch, for COCO without the COCO-stuff maps. Not the paper's model:
# the paper's 59.1 box AP on val2017 (453M params) was obtained WITH the semantic branch; expect a lower AP here.
_base_ = './dual_swin_l_htc.py'

model = dict(data_preprocessor=dict(pad_seg=False), roi_head=dict(semantic_roi_extractor=None, semantic_head=None))

train_pipeline = _base_.mask_train_pipeline_1600
train_dataloader = dict(dataset=dict(data_prefix=dict(_delete_=True, img='train2017/'), pipeline=train_pipeline))
