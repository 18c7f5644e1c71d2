"""The dashboard: SVG figures of predictors and accuracy matrices (also served by the API
with ``?format=svg``) and a static page that shows them."""
