"""The evaluation harness: `bone2gene evaluate --suite NAME` (`suites` lists them).

- `inputs`: every radiograph decoded, masked and gated once, inputs built per model size;
- `encoders`: the representations compared (the model, read as users get it through
  `matcher.batch.read_batch`; an untrained encoder; bone-age features without metric learning;
  pixel thumbnails);
- `splits`: the one patient splitter; frequent and rare disorders, gallery/test patients per
  random draw, the four settings;
- `scorers`: how a representation ranks disorders (a ranking rule, random, a softmax classifier);
- `metrics`: top-k (the one set `KS`), pytorch-metric-learning's AccuracyCalculator, bone age,
  sex, probabilities; age bands come from `matcher.age_bands`;
- `run` and `report`: the GestaltMatcher-Arc protocol suite as data, then Markdown, figures, JSON;
- `unseen`: the unseen-syndromes suite;
- `markdown`: the one table writer;
- `suites`: the registry.
"""
