"""Hugging Face causal LMs in the worker: loaded offline from an upload, their tokenizer as a
vocabulary, wrapped as a token model, made smaller, saved back as a folder transformers loads."""
