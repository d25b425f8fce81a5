"""The seed's FastAPI router layout (APIRouter(prefix="/ws") included with prefix="/api/v1"), used
as the reference voice-service is compared with. Run by uvicorn in test_uvicorn_parity.py."""
from fastapi import APIRouter, FastAPI, WebSocket

router = APIRouter(prefix="/ws")


@router.websocket("/simple-voice-chat")
async def simple_voice_chat(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_json({"type": "session"})
    while True:
        if (await websocket.receive_json()).get("type") == "ping":
            await websocket.send_json({"type": "pong"})


@router.get("/simple-voice-chat/status")
async def status():
    return {"status": "ok"}


legacy = APIRouter(prefix="/ws")


@legacy.websocket("/voice-conversation")
async def voice_conversation(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_json({"type": "session"})


app = FastAPI()
app.include_router(router, prefix="/api/v1")
app.include_router(legacy)
