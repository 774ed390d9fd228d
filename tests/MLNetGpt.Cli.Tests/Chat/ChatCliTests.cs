using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.VisualBasic.FileIO;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary><c>mlnetgpt generate --chat [--system TEXT]</c> and <c>mlnetgpt info</c> on the chat fixture, run as a process.</summary>
public sealed class ChatCliTests
{
    private static readonly string[] Questions = ["What is the capital of France?", "Tell me a joke, please", "Answer with yes or no: is it raining?"];

    private static List<string[]> Parse(string path)
    {
        using var parser = new TextFieldParser(path, Encoding.UTF8) { TextFieldType = FieldType.Delimited, HasFieldsEnclosedInQuotes = true, TrimWhiteSpace = false };
        parser.SetDelimiters(",");
        var rows = new List<string[]>();
        while (!parser.EndOfData) rows.Add(parser.ReadFields()!);
        return rows;
    }

    private static string WriteQuestions(string folder)
    {
        var path = Path.Combine(folder, "questions.csv");
        File.WriteAllText(path, "id,question\n" + string.Join("\n", Questions.Select((q, i) => $"{i},\"{q}\"")) + "\n");
        return path;
    }

    [Fact]
    public void Generate_with_chat_answers_every_question_from_the_prompt_the_models_template_renders()
    {
        var folder = Fixtures.TempFolder("cli-chat");
        var input = WriteQuestions(folder);
        var output = Path.Combine(folder, "answers.csv");
        const string system = "You are a helpful assistant.";
        var (code, _, stderr) = CliProcess.Run("generate", input, "-o", output, "--model", HfConversation.ChatFixtureFolder, "--prompt-column", "question",
            "--chat", "--system", system, "--max-new-tokens", "8", "--greedy", "--quiet");
        Assert.True(code == 0, stderr);
        var rows = Parse(output);
        Assert.Equal(["id", "question", "completion", "finish_reason", "error"], rows[0]);
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        for (int i = 0; i < Questions.Length; i++)
        {
            var prompt = model.ChatTemplate!.Render([new ChatMessage(ChatRole.System, system), new ChatMessage(ChatRole.User, Questions[i])]);
            var expected = model.GenerateTokens([model.Tokenizer.EncodeToIds(prompt).ToArray()], new GenerationOptions { MaxNewTokens = 8, DoSample = false })[0];
            Assert.Equal(Questions[i], rows[i + 1][1]);
            Assert.Equal(expected.Text, rows[i + 1][2]);
            Assert.Equal(expected.FinishReason == FinishReason.Eos ? "eos" : "length", rows[i + 1][3]);
            Assert.Equal("", rows[i + 1][4]);
        }
        // Without --chat the same rows are plain prompts, so the answers differ.
        var plain = Path.Combine(folder, "plain.csv");
        Assert.Equal(0, CliProcess.Run("generate", input, "-o", plain, "--model", HfConversation.ChatFixtureFolder, "--prompt-column", "question",
            "--max-new-tokens", "8", "--greedy", "--quiet").ExitCode);
        Assert.NotEqual(rows.Skip(1).Select(r => r[2]), Parse(plain).Skip(1).Select(r => r[2]));
    }

    [Fact]
    public void System_without_chat_and_chat_on_a_model_without_a_template_are_refused_in_one_line()
    {
        var folder = Fixtures.TempFolder("cli-chat-bad");
        var input = WriteQuestions(folder);
        var output = Path.Combine(folder, "answers.csv");
        var noChat = CliProcess.Run("generate", input, "-o", output, "--model", HfConversation.ChatFixtureFolder, "--prompt-column", "question", "--system", "Hi");
        Assert.Equal(1, noChat.ExitCode);
        Assert.Equal("mlnetgpt: error: --system needs --chat (a system message is part of a chat conversation).", noChat.Stderr.Trim());
        var noTemplate = CliProcess.Run("generate", input, "-o", output, "--model", Fixtures.Folder("tiny-gpt2-b"), "--prompt-column", "question", "--chat");
        Assert.Equal(1, noTemplate.ExitCode);
        var line = Assert.Single(noTemplate.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("mlnetgpt: error: Chat is set, but the model folder", line);
        Assert.Contains("has no chat template", line);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Info_says_whether_a_model_has_a_chat_template()
    {
        var chat = CliProcess.Run("info", "--model", HfConversation.ChatFixtureFolder);
        Assert.Equal(0, chat.ExitCode);
        Assert.Contains("chat template           default (tokenizer_config.json)", chat.Stdout);
        var plain = CliProcess.Run("info", "--model", Fixtures.Folder("tiny-gpt2-b"));
        Assert.Contains("chat template           none", plain.Stdout);
    }
}
