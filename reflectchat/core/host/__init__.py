"""This machine: memory, CPU/GPU facts, the llama.cpp build, doctor and bench."""
