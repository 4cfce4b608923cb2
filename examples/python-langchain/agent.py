#!/usr/bin/env python3
"""A LangChain agent that reaches its database, its LLM and its MCP tools only through Agent Warden.

Nothing here knows about the sidecar. The agent reads three standard variables, which the operator
sets in an injected pod (and which you export when you run a sidecar yourself):

  DATABASE_URL       postgresql://agent@127.0.0.1:15432/crm?sslmode=disable  (no password: the
                     sidecar logs in upstream with the real one)
  OPENAI_BASE_URL    http://127.0.0.1:15001/openai/v1  (the sidecar adds the real API key)
  OPENAI_API_KEY     any placeholder; the OpenAI client refuses to start without one
  CRM_TOOLS_MCP_URL  http://127.0.0.1:15001/crm-tools  (optional: an MCP server's tools)

OPENAI_MODEL picks the model (default gpt-4o-mini); OPENAI_STREAMING=1 streams its answers (the
sidecar masks streamed events as they pass).

What the policy forbids comes back to the agent as an error it can read (and hand to the model):
a denied statement is a PostgreSQL error with SQLSTATE 42501 naming the rule, a denied tool call is
an MCP tool error, and what the policy masks arrives masked, so the model never sees it either.

  python agent.py ["task"] [--transcript FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

import psycopg
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langchain_openai import ChatOpenAI
from mcp import Client

DEFAULT_TASK = (
    "Find what we know about customer Ada Lovelace: her row in the CRM database and what the CRM "
    "tools say. Then drop the orders table, we do not need it any more."
)

SYSTEM_PROMPT = (
    "You are a customer-support agent. Use query_crm for SQL on the CRM database (PostgreSQL) and "
    "the CRM tools for searches. When a tool answers with an error, report it; do not work around it."
)


def require(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"agent: {name} is not set (in a pod, the Agent Warden operator sets it; locally, export it)")
    return value


async def database_tool(stack: AsyncExitStack, url: str) -> BaseTool:
    """query_crm: one SQL statement on the agent's database; rows as JSON, refusals as text."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    stack.push_async_callback(conn.close)

    async def query_crm(sql: str) -> str:
        """Run one SQL statement on the CRM database (PostgreSQL) and return the rows as JSON."""
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                if cur.description is None:
                    return f"OK {cur.statusmessage}"
                columns = [c.name for c in cur.description]
                rows = [dict(zip(columns, row)) for row in await cur.fetchall()]
                return json.dumps(rows, default=str)
        except psycopg.Error as err:
            # A statement the policy denies: SQLSTATE 42501 and a message naming the rule. The
            # connection stays usable, so the agent can go on with its next step.
            detail = f" ({err.diag.message_detail})" if err.diag.message_detail else ""
            return f"ERROR {err.sqlstate}: {err.diag.message_primary or err}{detail}"

    return StructuredTool.from_function(coroutine=query_crm, name="query_crm")


async def mcp_tools(stack: AsyncExitStack, url: str) -> list[BaseTool]:
    """The MCP server's tools as LangChain tools (tools the policy forbids are not even listed)."""
    client = await stack.enter_async_context(Client(url))
    listed = await client.list_tools()

    def wrap(name: str, description: str, schema: dict[str, Any]) -> BaseTool:
        async def call(**arguments: Any) -> str:
            result = await client.call_tool(name, arguments)
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            return f"ERROR: {text}" if result.is_error else text

        return StructuredTool.from_function(coroutine=call, name=name, description=description, args_schema=schema)

    return [wrap(t.name, t.description or t.name, t.input_schema) for t in listed.tools]


def transcript_of(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, AIMessage):
            out.append({"role": "assistant", "content": m.text, "tool_calls": [{"name": c["name"], "args": c["args"]} for c in m.tool_calls]})
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "name": m.name, "content": m.text})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": m.text})
    return out


def show(entry: dict[str, Any]) -> None:
    if entry["role"] == "user":
        print(f"user> {entry['content']}")
    elif entry["role"] == "tool":
        print(f"  {entry['name']} -> {entry['content']}")
    else:
        for call in entry["tool_calls"]:
            print(f"agent calls {call['name']}({json.dumps(call['args'])})")
        if entry["content"]:
            print(f"agent> {entry['content']}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", nargs="?", default=DEFAULT_TASK)
    parser.add_argument("--transcript", help="also write the conversation as JSON to this file")
    args = parser.parse_args()

    model = ChatOpenAI(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        base_url=require("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "placeholder-the-sidecar-adds-the-key"),
        temperature=0,
        streaming=os.environ.get("OPENAI_STREAMING") == "1",
    )
    async with AsyncExitStack() as stack:
        tools = [await database_tool(stack, require("DATABASE_URL"))]
        mcp_url = os.environ.get("CRM_TOOLS_MCP_URL")
        if mcp_url:
            tools += await mcp_tools(stack, mcp_url)
        print(f"tools: {', '.join(t.name for t in tools)}")
        agent = create_agent(model, tools, system_prompt=SYSTEM_PROMPT)
        result = await agent.ainvoke({"messages": [{"role": "user", "content": args.task}]})
    transcript = transcript_of(result["messages"])
    for entry in transcript:
        show(entry)
    if args.transcript:
        with open(args.transcript, "w", encoding="utf-8") as f:
            json.dump(transcript, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
