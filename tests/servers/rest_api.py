"""A small REST API in FastAPI, whose OpenAPI 3.1 document FastAPI writes: path, query,
header and body parameters, answers 200, 201, 204 and 404. `--openapi` prints the document
and exits."""

import json
import sys
from typing import Optional

from fastapi import FastAPI, Header, HTTPException, Response
from pydantic import BaseModel

app = FastAPI(title="Inventory", version="1.0.0")


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class Stored(Item):
    id: int


ITEMS: dict[int, Stored] = {1: Stored(id=1, name="hammer", price=9.5, tags=["tools"])}


@app.get("/items/{item_id}", operation_id="get_item", summary="Read an item")
def get_item(item_id: int, verbose: bool = False, x_request_id: Optional[str] = Header(default=None)) -> Stored:
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found")
    return ITEMS[item_id]


@app.get("/whoami", operation_id="whoami", summary="What the request carried")
def whoami(
    verbose: bool = False,
    x_request_id: Optional[str] = Header(default=None),
    authorization: Optional[str] = Header(default=None),
) -> dict:
    return {"request_id": x_request_id, "verbose": verbose, "authorization": authorization}


@app.get("/items/{item_id}/label", operation_id="item_label", summary="The item's label (PNG)")
def item_label(item_id: int) -> Response:
    return Response(content=b"\x89PNG\r\n\x1a\n" + bytes([item_id]), media_type="image/png")


@app.get("/items", operation_id="list_items", summary="List items, by tag")
def list_items(tag: Optional[str] = None, limit: int = 10) -> list[Stored]:
    found = [i for i in ITEMS.values() if tag is None or tag in i.tags]
    return found[:limit]


@app.post("/items", operation_id="create_item", status_code=201, summary="Create an item")
def create_item(item: Item) -> Stored:
    stored = Stored(id=max(ITEMS) + 1, **item.model_dump())
    ITEMS[stored.id] = stored
    return stored


@app.delete("/items/{item_id}", operation_id="delete_item", status_code=204, summary="Delete an item")
def delete_item(item_id: int) -> Response:
    if ITEMS.pop(item_id, None) is None:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found")
    return Response(status_code=204)


if __name__ == "__main__":
    if "--openapi" in sys.argv:
        print(json.dumps(app.openapi(), indent=2))
        sys.exit(0)
    import socket

    import uvicorn  # only to serve

    # A free port, bound here so its number can be printed before serving.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"port {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, fd=sock.fileno(), log_level="warning")).run()
