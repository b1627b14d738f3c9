"""Metric definitions on hand-made cases: top-k accuracy and ASR with the target excluded."""
import pytest
import torch

from paperlib.eval.zeroshot import attack_success_rate, clean_accuracy, topk_accuracy


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[0.9, 0.5, 0.1, 0.0],    # label 0: rank 1
                           [0.9, 0.5, 0.1, 0.0],    # label 2: rank 3
                           [0.1, 0.2, 0.3, 0.4]])   # label 0: rank 4
    labels = torch.tensor([0, 2, 0])
    acc = topk_accuracy(logits, labels, ks=(1, 3, 5))
    assert acc["top1"] == pytest.approx(100 / 3)
    assert acc["top3"] == pytest.approx(200 / 3)
    assert acc["top5"] == pytest.approx(100.0)  # k larger than the class count: all hit


def test_asr_excludes_target_class_images():
    # 3 classes, target 1. Features chosen so that every image is classified as class 1.
    classifier = torch.eye(3)
    feats = torch.tensor([[0., 1, 0], [0., 1, 0], [0., 1, 0], [1., 0, 0]])
    labels = torch.tensor([0, 1, 2, 1])
    # excluding target-class images (rows 1 and 3): rows 0, 2 both predict 1 -> 100 %
    keep = labels != 1
    asr = attack_success_rate(feats[keep], classifier, labels[keep], target=1, convention="all")
    assert asr["asr_top1"] == pytest.approx(100.0)
    # row 3 (a target image) is predicted 0: counting it lowers the "all" convention only
    asr_all = attack_success_rate(feats, classifier, labels, target=1, convention="all")
    assert asr_all["asr_top1"] == pytest.approx(75.0)
    asr_excl = attack_success_rate(feats, classifier, labels, target=1, convention="exclude_target")
    assert asr_excl["asr_top1"] == pytest.approx(100.0)


def test_asr_uses_the_target_not_the_true_label():
    classifier = torch.eye(2)
    feats = torch.tensor([[1., 0], [1., 0]])       # predicted: class 0 = their true label
    labels = torch.tensor([0, 0])
    assert attack_success_rate(feats, classifier, labels, target=1)["asr_top1"] == 0.0
    assert clean_accuracy(feats, classifier, labels)["ca_top1"] == 100.0


def test_unknown_convention():
    with pytest.raises(ValueError, match="exclude_target"):
        attack_success_rate(torch.eye(2), torch.eye(2), torch.tensor([0, 1]), 1, convention="some")
