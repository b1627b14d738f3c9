"""Poisoned-pair detectors and detection-based defences (CFBD; ABL and EftCLIP to follow).

Modules hold the detectors' decision rules as pure functions of embeddings and scores, so the
tests pin them on hand-made inputs; :mod:`paperlib.detect.metrics` scores any detector.
"""
