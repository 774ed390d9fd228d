// An OpenAI-compatible chat endpoint over one MLNetGpt model:
//   dotnet run --project examples/ChatServer -- --model tests/Fixtures/tiny-chatml --urls http://127.0.0.1:5080
// then POST /v1/chat/completions as to OpenAI (see README.md).
await MLNetGpt.Examples.ChatServer.ChatServerApp.Create(args).RunAsync();
