"""The dashboard's sign-in (POST /v1/session): a key given once, kept by the browser in a
cookie its scripts cannot read."""

from pydantic import BaseModel, ConfigDict, Field


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=200, description="An API key (dk_...)")


class Session(BaseModel):
    object: str = "session"
    tenant: str = Field(description="The tenant the key acts for")
