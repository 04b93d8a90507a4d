# Grounding DINO, Dual-Swin-T, COCO fine-tuning (12 epochs): mmdet's recipe (900 queries, 6 encoder layers with
# text-image fusion and 6 decoder layers with text cross-attention, contrastive classification against the prompt's
# tokens; the prompt is COCO's 80 class names; AdamW 1e-4, backbone lr x0.1, gradient clip 0.1; multi-scale 480-800
# + DETR crop; activation checkpointing in the Swin blocks and the encoder) with a Dual-Swin-T and assistant
# supervision. Base: mmdet::grounding_dino/grounding_dino_swin-t_finetune_16xb2_1x_coco.py. Not in the CBNetV2
# paper: no AP is claimed for this config.
#
# CBGroundingDINO: the text prompt is encoded ONCE per step and shared by both branches; every branch's features go
# through the same ChannelMapper, fusion encoder, decoder and head; the assisting branch's losses x0.5 (logged
# assist1_*). load_from (mmdet's pretrained single-backbone Grounding DINO of this recipe) is expanded by cbnet's
# tools/train.py in memory: its Swin-T goes into both branches, the connections start at zero, the rest (language
# model included) loads as it is; or convert it once with tools/model_converters/single_to_cb.py.
#
# Language model: BERT (bert-base-uncased), loaded by transformers' from_pretrained when the model is built: from
# the Hugging Face hub, its cache (HF_HOME; HF_HUB_OFFLINE=1 uses only the cache) or a local directory. Offline,
# point lang_model_name below at a directory holding config.json, vocab.txt, the tokenizer files and the weights
# (what save_pretrained writes). Needs requirements/grounding.txt (transformers 4.51.3, fairscale).
# Measured: 92.20M parameters without the language model (BERT-base: 108.89M more; single Swin-T Grounding DINO:
# 64.04M without it), built with every init_cfg dropped.
_base_ = 'mmdet::grounding_dino/grounding_dino_swin-t_finetune_16xb2_1x_coco.py'
custom_imports = dict(imports=['cbnet'], allow_failed_imports=False)

lang_model_name = 'bert-base-uncased'  # or a local directory
model = dict(
    type='CBGroundingDINO',
    # The mmdet SwinTransformer arguments of the base stay (Swin-T, out_indices (1, 2, 3), with_cp=True).
    backbone=dict(
        type='CBSwinTransformer',  # official CBNetV2 Swin composition (1x1 conv + bias, identity on equal widths)
        cb_del_stages=1,  # official meaning: the lead has no patch embedding
        cb_zero_init=True),
    language_model=dict(name=lang_model_name),
    assist_loss_weights=0.5)

# The recipe's backbone lr x0.1 is for pretrained weights: the composite connections are new and train at the
# full lr, like the rest of the detector.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.composition': dict(lr_mult=1.0)}))
