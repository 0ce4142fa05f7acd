"""The length of a WAV file a media request carries: what a transcription is billed (the
provider's answer) and what its budget reserves (the gate), read the same way by both."""

from __future__ import annotations

import io
import wave

from switchpoint.canonical import MediaRequest


def wav_seconds(request: MediaRequest) -> float | None:
    """Seconds of the first WAV file part of ``request``; None when there is none or it cannot
    be read (other formats' length is known only from the answer)."""
    for f in request.files:
        if f.data[:4] == b"RIFF" and f.data[8:12] == b"WAVE":
            try:
                with wave.open(io.BytesIO(f.data)) as w:
                    return float(w.getnframes() / w.getframerate())
            except (wave.Error, EOFError, ZeroDivisionError):
                return None
    return None
