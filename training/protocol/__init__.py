"""`bone2gene evaluate`: GestaltMatcher-Arc's evaluation protocol for a model and its baselines.

- `inputs`: every radiograph decoded, masked and gated once, inputs built per model size;
- `encoders`: the representations compared (the model, an untrained encoder, bone-age
  features without metric learning, pixel thumbnails);
- `splits`: frequent and rare disorders, gallery/test patients per random draw, the four settings;
- `scorers`: how a representation ranks disorders (a ranking rule, random, a softmax classifier);
- `metrics`: top-k, pytorch-metric-learning's AccuracyCalculator, bone age, sex, probabilities;
- `run`: the whole evaluation as data (`EvaluationConfig` -> `EvaluationResult`);
- `report`: Markdown, figures and JSON.
"""
