"""edgemoe.reference mirrors M3ViT's module tree: its state_dict keys and shapes are M3ViT's
(shared/spec/m3vit.md §4, without 'module.')."""
from edgemoe import synthetic
from edgemoe.reference import M3ViT


def test_pascal_vit_s_keys_and_shapes():
    state = M3ViT(synthetic.preset("pascal-vit-s")).state_dict()
    expected = {
        "backbone.cls_token": (1, 1, 384),
        "backbone.pos_embed": (1, 1025, 384),
        "backbone.patch_embed.proj.weight": (384, 3, 16, 16),
        "backbone.blocks.0.attn.qkv.weight": (1152, 384),
        "backbone.blocks.0.mlp.fc1.weight": (1536, 384),
        "backbone.blocks.0.mlp.fc2.weight": (384, 1536),
        "backbone.blocks.1.mlp.gate.4.w_gate": (384, 16),
        "backbone.blocks.1.mlp.experts.htoh4.weight": (16, 384, 384),
        "backbone.blocks.1.mlp.experts.htoh4.bias": (16, 384),
        "backbone.blocks.11.mlp.experts.h4toh.weight": (16, 384, 384),
        "backbone.blocks.11.mlp.experts.h4toh.bias": (16, 384),
        "decoders.semseg.norm.weight": (384,),
        "decoders.semseg.conv_0.weight": (256, 384, 3, 3),
        "decoders.semseg.conv_3.weight": (256, 256, 3, 3),
        "decoders.semseg.syncbn_fc_3.running_var": (256,),
        "decoders.semseg.syncbn_fc_0.num_batches_tracked": (),
        "decoders.human_parts.conv_4.weight": (7, 256, 1, 1),
        "decoders.normals.conv_4.weight": (3, 256, 1, 1),
        "decoders.edge.conv_4.bias": (1,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert "backbone.blocks.0.mlp.gate.0.w_gate" not in state  # even blocks are dense
    assert not any(k.startswith(("backbone.norm", "backbone.head")) for k in state)  # no final norm
    # 4 embedding tensors, 8 per block + 4 (dense) or 5 routers + 4 expert tensors (MoE), 32 per head
    assert len(state) == 4 + 6 * 12 + 6 * 17 + 5 * 32


def test_task_conditioned_keys():
    cfg = synthetic.preset("pascal-vit-s")
    import dataclasses

    state = M3ViT(dataclasses.replace(cfg, gate="task_conditioned", gate_task_dim=64)).state_dict()
    assert tuple(state["backbone.gate_task_represent.fc1.weight"].shape) == (64, 5)
    assert tuple(state["backbone.gate_task_represent.fc2.weight"].shape) == (64, 64)
    assert tuple(state["backbone.gate_task_represent.norm.bias"].shape) == (64,)
    assert tuple(state["backbone.blocks.1.mlp.gate.w_gate"].shape) == (448, 16)


def test_routing_record_and_near_ties():
    import torch

    cfg = synthetic.preset("tiny")
    ref = synthetic.seeded_model(cfg, 1)
    x = synthetic.random_images(cfg, 2, 0)
    routing = ref.routing(x, "semseg")
    assert sorted(routing) == [1, 3]
    experts, margin = routing[1]
    assert experts.shape == (2 * cfg.num_tokens, cfg.top_k) and (margin >= 0).all()
    assert ref.near_ties(x, "semseg", threshold=float("inf")) == 2 * 2 * cfg.num_tokens
    # a gate whose columns 1 and 2 are equal makes every token's choice between them a tie
    with torch.no_grad():
        for g in ref.backbone.blocks[1].mlp.gate:
            g.w_gate.zero_()
    assert ref.near_ties(x, "semseg") >= 2 * cfg.num_tokens
