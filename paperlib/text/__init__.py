"""Text processing for the defences: EDA (CleanCLIP, ABD), a rule-based caption parser and
CleanerCLIP's positive / counterfactual sub-captions.  All offline, on WordNet."""
