"""Ask a freshly started (not onboarded) Home Assistant for statistics over its websocket API.

usage: python ha_read_statistics.py BASE_URL START_ISO END_ISO STATISTIC_ID...
Creates the owner user through onboarding, then prints one JSON object:
{"hour": <statistics_during_period reply>, "5minute": <...>, "meta": <get_statistics_metadata reply>}
Rows come in kWh for energy statistics (units: energy kWh), times in epoch milliseconds.
"""

import asyncio
import json
import sys

import aiohttp


async def main(base: str, start: str, end: str, ids: list[str]) -> None:
    client_id = base + "/"
    async with aiohttp.ClientSession() as session:
        user = {
            "client_id": client_id,
            "name": "pwsync test",
            "username": "pwsync",
            "password": "pwsync-test-password",
            "language": "en",
        }
        async with session.post(f"{base}/api/onboarding/users", json=user) as r:
            r.raise_for_status()
            code = (await r.json())["auth_code"]
        form = {"grant_type": "authorization_code", "code": code, "client_id": client_id}
        async with session.post(f"{base}/auth/token", data=form) as r:
            r.raise_for_status()
            token = (await r.json())["access_token"]
        async with session.ws_connect(base.replace("http", "ws", 1) + "/api/websocket") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": token})
            reply = await ws.receive_json()
            assert reply["type"] == "auth_ok", reply
            out = {}
            commands = [
                (
                    period,
                    {
                        "type": "recorder/statistics_during_period",
                        "start_time": start,
                        "end_time": end,
                        "statistic_ids": ids,
                        "period": period,
                        "types": ["state", "sum"],
                        "units": {"energy": "kWh"},
                    },
                )
                for period in ("hour", "5minute")
            ]
            commands.append(
                ("meta", {"type": "recorder/get_statistics_metadata", "statistic_ids": ids})
            )
            for n, (key, command) in enumerate(commands, start=1):
                await ws.send_json({"id": n, **command})
                reply = await ws.receive_json()
                assert reply.get("success"), reply
                out[key] = reply["result"]
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
