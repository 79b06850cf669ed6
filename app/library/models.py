"""Plain records the library returns (no Qt, no SQL): what exports and the UI consume."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar

SESSION_KINDS = ("recording", "file", "dictation")
POINT_KINDS = ("decision", "question")


class SessionState(StrEnum):
    """A session's ``status`` (the values are what the rows store)."""
    NEW = "new"
    RECORDING = "recording"
    TRANSCRIBING = "transcribing"
    READY = "ready"
    FAILED = "failed"


class SummaryState(StrEnum):
    WRITING = "writing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"    # left running by a process that died

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED)


class JobKind(StrEnum):
    TRANSCRIBE = "transcribe"
    VIDEO_FRAMES = "video_frames"
    SUMMARIZE = "summarize"


@dataclass
class Session:
    id: int
    title: str
    created: str                 # ISO 8601 UTC, e.g. 2026-11-24T07:58:00Z
    kind: str                    # recording / file / dictation
    status: str = "new"          # a SessionState value
    duration: float = 0.0        # seconds
    source: str | None = None    # the imported file, if any
    language: str | None = None
    updated: str | None = None


@dataclass
class Speaker:
    id: int
    session_id: int
    label: str                   # stable label from diarization: S1, S2, ...
    name: str | None = None      # display name the user gave
    profile_id: int | None = None
    embedding: bytes | None = None  # float32 centroid of the speaker's voice in this session

    @property
    def display(self) -> str:
        return self.name or self.label


@dataclass
class Segment:
    id: int
    session_id: int
    start: float                 # seconds from the session start
    end: float
    text: str
    speaker_id: int | None = None
    speaker: str | None = None   # display name (or label) of the speaker, filled by queries
    language: str | None = None
    edited: bool = False         # the user changed its words or its bounds: transcription keeps it
    original_text: str | None = None  # the model's words, where the user changed them
    speaker_set: bool = False    # the user chose its speaker: diarization keeps it


@dataclass
class Media:
    id: int
    session_id: int
    offset: float                # seconds from the session start
    path: str                    # relative to the data folder
    kind: str                    # screenshot / frame / audio / video
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    created: str | None = None


@dataclass
class Summary:
    id: int
    session_id: int
    template: str
    text: str
    model: str | None = None
    created: str | None = None
    status: str = "done"         # a SummaryState value
    updated: str | None = None


@dataclass
class SummaryPoint:
    """A decision or an open question of a summary (structured, not parsed from prose)."""
    id: int
    session_id: int
    summary_id: int
    kind: str                    # "decision" or "question"
    text: str
    position: int = 0


@dataclass
class ActionItem:
    id: int
    session_id: int
    text: str
    owner: str | None = None
    due: str | None = None
    done: bool = False
    summary_id: int | None = None


@dataclass
class ChatMessage:
    id: int
    session_id: int
    role: str
    content: str
    attachments: list[Any] = field(default_factory=list)
    created: str | None = None


@dataclass
class VoiceProfile:
    id: int
    name: str
    embedding: bytes | None = None   # float32 vector
    samples: int = 0
    created: str | None = None
    updated: str | None = None


# -- what a job needs to continue after a restart (the row's ``resume`` JSON) ----
@dataclass
class ResumeState:
    """Base of the typed resume states. Unknown keys in a stored row are ignored and
    missing ones take their defaults, so an older or newer row still reads."""
    KIND: ClassVar[JobKind]

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TranscribeResume(ResumeState):
    KIND: ClassVar[JobKind] = JobKind.TRANSCRIBE
    file: str = ""
    fingerprint: str = ""
    options: dict = field(default_factory=dict)        # what must match to resume (language options)
    utterances: list[list[float]] = field(default_factory=list)   # [start, end] seconds
    duration: float = 0.0
    done: int = 0                                      # utterances stored so far
    extra: dict = field(default_factory=dict)


@dataclass
class FramesResume(ResumeState):
    KIND: ClassVar[JobKind] = JobKind.VIDEO_FRAMES
    fingerprint: str = ""
    file: str = ""


@dataclass
class SummarizeResume(ResumeState):
    KIND: ClassVar[JobKind] = JobKind.SUMMARIZE
    summary_id: int | None = None
    template: str = ""


RESUME_TYPES: dict[str, type[ResumeState]] = {c.KIND: c for c in (TranscribeResume, FramesResume, SummarizeResume)}


@dataclass
class Job:
    id: int
    kind: str                    # a JobKind value
    state: str                   # a JobState value
    session_id: int | None = None
    progress: float = 0.0
    error: str | None = None
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    updated: str | None = None
    resume: dict[str, Any] = field(default_factory=dict)  # what a restart needs, as stored

    def resume_state(self) -> ResumeState:
        """The typed resume state of this job's kind (TranscribeResume, ...)."""
        cls = RESUME_TYPES.get(self.kind)
        if cls is None:
            raise ValueError(f"a '{self.kind}' job has no typed resume state")
        return cls.from_dict(self.resume)


@dataclass
class SearchHit:
    session_id: int
    session_title: str
    source: str                  # "segment", "title", "summary" or "attendee"
    snippet: str                 # with the highlight markers asked for
    offset: float | None = None  # seconds into the session (segments)
    segment_id: int | None = None
    speaker: str | None = None
    rank: float = 0.0


@dataclass
class Attendee:
    name: str = ""               # the display name the calendar gives (CN), may be empty
    email: str = ""              # lower case, without "mailto:"; may be empty

    @property
    def display(self) -> str:
        """The name, else the part of the address before the @."""
        return self.name or self.email.split("@")[0]


@dataclass
class Event:
    """One occurrence of a calendar event (a recurring event has one per occurrence)."""
    uid: str
    title: str
    start: str                   # ISO 8601 UTC, e.g. 2026-11-24T07:58:00Z
    end: str
    recurrence_id: str = ""      # which occurrence of the UID (its original start, UTC)
    all_day: bool = False
    tz: str | None = None        # the time zone it was written in (TZID), if any
    location: str | None = None
    organizer: Attendee | None = None
    attendees: list[Attendee] = field(default_factory=list)
    id: int | None = None        # the row, once stored
    calendar_id: int | None = None


@dataclass
class Overlap:
    """A stretch where a second person speaks over the segment's speaker (found by transcription)."""
    id: int
    session_id: int
    start: float
    end: float
    speaker_id: int | None = None
    speaker: str | None = None   # display name (or label) of the second speaker


def marks_on_segments(segments: Sequence[Segment], marks: Sequence[Overlap]) -> dict[int, list[Overlap]]:
    """Each overlap mark on the segment it lies in (``segments`` in time order): the one its
    middle falls in, when someone other than the mark's speaker holds it. Segment id -> marks."""
    starts = [g.start for g in segments]
    out: dict[int, list[Overlap]] = {}
    for m in marks:
        r = bisect.bisect_right(starts, (m.start + m.end) / 2) - 1
        if 0 <= r < len(segments) and segments[r].speaker_id != m.speaker_id and m.start < segments[r].end:
            out.setdefault(segments[r].id, []).append(m)
    return out


@dataclass
class SessionDetail:
    """Everything about one session, as exports and the session view need it."""
    session: Session
    speakers: list[Speaker]
    segments: list[Segment]
    summaries: list[Summary] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for sp in d["speakers"]:
            sp.pop("embedding", None)  # binary voice data stays in the library
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)
