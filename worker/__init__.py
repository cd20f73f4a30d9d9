"""Distillery's execution side: the pipeline that pretrains, distils, evaluates and exports."""
