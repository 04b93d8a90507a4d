"""mmdet's SwinTransformer, loaded from the original Swin file layout (``convert_weights=True``)."""
from ..checkpoint_formats import save_original_swin
from . import BackboneCase, option_grid

CASES = [
    BackboneCase(
        'Swin',
        dict(
            type='SwinTransformer',
            embed_dims=8,
            depths=(1, 1, 1, 1),
            num_heads=(1, 1, 2, 2),
            window_size=4,
            pretrain_img_size=64,
            drop_path_rate=0.0,
            out_indices=(0, 1, 2, 3),
            init_cfg=None),
        write_checkpoint=save_original_swin,
        # the absolute position embedding is a bare parameter of the stem: pruned, it must still freeze
        options=option_grid(frozen_stages=(-1, 0, 1, 2)) +
        option_grid(frozen_stages=(-1, 0, 1), use_abs_pos_embed=(True, )),
        with_cp=True),
]
