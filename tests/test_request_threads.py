"""The ASGI handler's request threads (chatsite/request_threads.py): reused from request to
request, never two requests on one thread at once, and a request whose client left holds
up nobody."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

from chatsite.asgi import http_application
from chatsite.request_threads import ReusedThreadsASGIHandler
from conversations import views
from tests.streams import asgi_get

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]

together = threading.Barrier(4)
release = threading.Event()
slow_started = threading.Event()
slow_thread: list[threading.Thread] = []


def where(request):
    return HttpResponse(str(threading.get_ident()))


def meet(request):
    together.wait(timeout=5)  # four requests at once, or a BrokenBarrierError
    return HttpResponse(str(threading.get_ident()))


def slow(request):
    slow_thread.append(threading.current_thread())
    slow_started.set()
    release.wait(timeout=10)
    return HttpResponse("late")


async def ticking(request):
    async def lines():
        for n in range(3):
            await asyncio.sleep(0.01)
            yield f"{n}\n"

    return StreamingHttpResponse(lines())


urlpatterns = [
    path("where", where),
    path("meet", meet),
    path("slow", slow),
    path("ticking", ticking),
    path("healthz", views.healthz),
]


async def call(url: str, *, leave: bool = False) -> tuple[int, str]:
    """A GET through the app: (status, body); `leave`: the client goes away once the view
    has started."""
    left = (lambda: asyncio.to_thread(slow_started.wait, 5)) if leave else None
    status, _headers, body = await asgi_get(http_application, url, leave=left)
    return status, body


def test_the_app_serves_django_on_reused_threads():
    assert isinstance(http_application, ReusedThreadsASGIHandler)


async def test_requests_in_turn_reuse_one_thread_and_start_none():
    await call("/where")  # the first request may start the thread
    threads_before = threading.active_count()
    served = {(await call("/where"))[1] for _ in range(20)}
    assert len(served) == 1
    assert threading.active_count() == threads_before


async def test_requests_at_once_each_have_a_thread_of_their_own():
    together.reset()
    served = await asyncio.wait_for(asyncio.gather(*(call("/meet") for _ in range(4))), 10)
    assert [status for status, _ in served] == [200] * 4
    assert len({thread for _, thread in served}) == 4
    # ... and then go back to the idle threads, for the next ones.
    threads_before = threading.active_count()
    together.reset()
    await asyncio.wait_for(asyncio.gather(*(call("/meet") for _ in range(4))), 10)
    assert threading.active_count() == threads_before


async def test_a_request_whose_client_left_mid_view_holds_up_nobody():
    release.clear()
    slow_started.clear()
    slow_thread.clear()
    abandoned = asyncio.create_task(call("/slow", leave=True))
    await asyncio.to_thread(slow_started.wait, 5)

    status, thread = await asyncio.wait_for(call("/where"), 2)  # not queued behind it
    assert status == 200 and thread != str(slow_thread[0].ident)

    release.set()
    assert await asyncio.wait_for(abandoned, 5) == (0, "")  # nothing sent: nobody to read it
    assert slow_thread[0].is_alive()  # idle again, for the next request
    assert (await call("/where"))[1] == str(slow_thread[0].ident)


async def test_async_views_run_on_the_loop_from_the_sync_middleware():
    status, body = await asyncio.wait_for(call("/ticking"), 5)  # streamed by the server
    assert (status, body) == (200, "0\n1\n2\n")
    # ... and a sync call inside one comes back to the request's thread: no deadlock.
    status, body = await asyncio.wait_for(call("/healthz"), 5)
    assert status == 200 and '"database": "ok"' in body


async def test_a_cancelled_request_lets_its_thread_go_once_its_view_returns():
    release.clear()
    slow_started.clear()
    slow_thread.clear()
    cancelled = asyncio.create_task(call("/slow"))  # a server's timeout or shutdown
    await asyncio.to_thread(slow_started.wait, 5)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    release.set()
    await asyncio.to_thread(slow_thread[0].join, 5)
    assert not slow_thread[0].is_alive()  # its connection closed, then the thread ended
    assert (await call("/where"))[0] == 200
