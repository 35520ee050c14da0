"""A local stand-in for an OpenAI-compatible chat-completions API: answers
``POST /v1/chat/completions`` with a fixed text, or fails when told to."""

from __future__ import annotations

from agnt_jobs.standins.server import LocalServer, Received, Reply


class FakeLLM(LocalServer):
    def __init__(self, reply: str = "A note written by the model.") -> None:
        super().__init__(self._respond)
        self.reply = reply
        self.failing_status: int | None = None

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def prompts(self) -> list[str]:
        return [r.json()["messages"][-1]["content"] for r in self.received]

    def _respond(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return Reply(404, {"error": "not found"})
        if self.failing_status is not None:
            return Reply(self.failing_status, {"error": "model overloaded"})
        body = request.json()
        return Reply(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.reply},
                        "finish_reason": "stop",
                    }
                ],
            },
        )
