"""Next-day GDELT event forecasting on a `wgf gdelt-build` folder.

Data, model, training, baselines, scores and forecast text (plain PyTorch / numpy; reads builds
through :mod:`wgf_cli.gdelt_contract`).
"""
