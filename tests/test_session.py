"""What a notebook session trained (lr_study.session), from the run directories alone."""

from __future__ import annotations

import json

import ml_collections

from lr_study import session


def _study() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(seeds=(0, 1), run_variants=('decay',),
                                        variants=dict(decay=dict())))


def test_progress_reads_summaries_then_checkpoints(tmp_path):
  finished, resumed = tmp_path / 'decay' / 'seed_0', tmp_path / 'decay' / 'seed_1'
  finished.mkdir(parents=True)
  (finished / 'summary.json').write_text(json.dumps({'updates': 716}))
  for step in ('179', '358', 'tmp'):
    (resumed / 'checkpoints' / step).mkdir(parents=True)
  before = session.progress(_study(), str(tmp_path))
  assert before == {('decay', 0): (716, True), ('decay', 1): (358, False)}
  assert session.summary(before, [{'updates': 716}, {'updates': 716}], str(tmp_path)) == (
      'Trained 358 updates in this session: 0 run(s) started, 1 resumed from a checkpoint, '
      '1 already finished.')


def test_a_finished_study_trains_nothing(tmp_path):
  before = {('decay', 0): (716, True), ('decay', 1): (716, True)}
  assert session.summary(before, [{'updates': 716}] * 2, 'W') == (
      'Nothing trained: all 2 runs had already finished in W.')
  assert session.progress(_study(), str(tmp_path / 'new')) == {('decay', 0): (0, False),
                                                               ('decay', 1): (0, False)}
