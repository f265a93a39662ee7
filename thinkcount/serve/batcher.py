"""Micro-batching: prompts from concurrent requests scored in one call of the model, once requests queue.

When the model is free and fewer than batch_from requests wait, the first is scored alone: under a light load
a batch would only make its requests wait for its longest prompt. From batch_from waiting requests on, the
first opens a batch and the others join it until it holds max_batch prompts or max_wait seconds have passed.
Up to `workers` batches are scored at once, each in a worker thread of its own (the model is in memory once;
the service gives each worker a share of the cores), and each request gets its own slice of the results."""
import asyncio


class MicroBatcher:
    def __init__(self, score, max_batch, max_wait, batch_from=1, on_batch=None, workers=1):
        """score: (prompts, worker) -> one result per prompt (blocking; runs in worker thread `worker`).
        on_batch: called with each batch's size (for the service's metrics)."""
        self.score, self.max_batch, self.max_wait, self.batch_from = score, max_batch, max_wait, batch_from
        self.on_batch, self.workers = on_batch or (lambda size: None), workers
        self.queue = asyncio.Queue()
        self.tasks = []

    def start(self):
        self.tasks = [asyncio.create_task(self.run(worker)) for worker in range(self.workers)]

    async def stop(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def submit(self, prompts):
        """The results for prompts, scored together with whatever other requests are waiting."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((prompts, future))
        return await future

    async def gather(self):
        """The next batch: the first request alone while fewer than batch_from wait; else the requests waiting
        now, then those arriving within max_wait, up to max_batch prompts."""
        batch = [await self.queue.get()]
        if 1 + self.queue.qsize() < self.batch_from:
            return batch
        size = len(batch[0][0])
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while size < self.max_batch:
            left = deadline - asyncio.get_running_loop().time()
            try:
                item = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            batch.append(item)
            size += len(item[0])
        return batch

    async def run(self, worker):
        while True:
            # A request whose caller stopped waiting (a client gone, a proxy past its score budget) is not scored.
            batch = [(prompts, future) for prompts, future in await self.gather() if not future.done()]
            if not batch:
                continue
            prompts = [p for request, _ in batch for p in request]
            self.on_batch(len(prompts))
            try:
                results = await asyncio.to_thread(self.score, prompts, worker)
            except Exception as e:  # the requests of this batch fail; the service goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for request, future in batch:
                if not future.done():  # a client that went away leaves a cancelled future
                    future.set_result(results[start:start + len(request)])
                start += len(request)
