"""Engines that generate replies: the backend protocol, llama.cpp, remote servers, grammars."""
