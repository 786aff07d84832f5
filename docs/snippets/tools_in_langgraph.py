from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from tools import get_tools

tools = get_tools(out_dir="key_frames")  # classify_ultrasound_video, retrieve_key_frames, search_guidelines
graph = StateGraph(MessagesState)
graph.add_node("tools", ToolNode(tools))
graph.add_edge(START, "tools")
graph.add_edge("tools", END)
app = graph.compile()

# Any chat model bound with `.bind_tools(tools)` emits tool calls like these; here we write them by hand.
clip = "clip.mp4"
calls = AIMessage(content="", tool_calls=[
    {"name": "classify_ultrasound_video", "args": {"video_path": clip}, "id": "c1"},
    {"name": "retrieve_key_frames", "args": {"video_path": clip, "k": 4}, "id": "c2"},
    {"name": "search_guidelines", "args": {"query": "B-lines subpleural consolidation COVID", "k": 2}, "id": "c3"},
])
result = app.invoke({"messages": [calls]})
for message in result["messages"][1:]:  # one ToolMessage per call, content is the tool's JSON result
    print(message.name, message.status, message.content[:120])
