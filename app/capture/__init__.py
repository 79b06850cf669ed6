"""Capture: microphone and system-audio recording written crash-safely to disk as it arrives.

`devices` lists and chooses inputs (sounddevice, injectable), `recorder` runs a recording (one
stream per source, a lock-free ring, one writer thread), `tracks` owns the on-disk format (raw
PCM + a JSON sidecar), finalization to WAV and crash recovery. No Qt here (only a future
screen-grab module may import it).
"""
