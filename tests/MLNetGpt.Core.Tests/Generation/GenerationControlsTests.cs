using System.Reflection;
using System.Text.Json;
using MLNetGpt.Generation;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>
/// The one list of decoding controls (GenerationControls): every option has its entry, and what walks the list
/// (defaults, persistence, generation_config.json) sees every control.
/// </summary>
public sealed class GenerationControlsTests
{
    // A value of each option type that differs from every library default.
    private static object SampleValue(Type type) => type switch
    {
        var t when t == typeof(int?) => 3,
        var t when t == typeof(float?) => 0.5f,
        var t when t == typeof(bool?) => true,
        var t when t == typeof(IReadOnlyList<int>) => new[] { 7 },
        var t when t == typeof(IReadOnlyList<string>) => new[] { "END" },
        var t when t == typeof(PromptOverflow?) => PromptOverflow.Error,
        var t when t == typeof(OutputConstraint) => OutputConstraint.Choices(["a", "b"]),
        var t => throw new InvalidOperationException($"GenerationOptions has a property of type {t}: teach this test a value of it."),
    };

    public static TheoryData<string> OptionProperties() =>
        new(typeof(GenerationOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => p.Name));

    [Theory]
    [MemberData(nameof(OptionProperties))]
    public void Every_GenerationOptions_property_has_exactly_one_entry_in_the_list_of_controls(string property)
    {
        var info = typeof(GenerationOptions).GetProperty(property)!;
        var options = new GenerationOptions();
        info.SetValue(options, SampleValue(info.PropertyType));
        var owners = GenerationControls.All.Where(c => c.Get(options) is not null).Select(c => c.Key).ToList();
        Assert.True(owners.Count == 1, $"GenerationOptions.{property} is read by {owners.Count} controls ({string.Join(", ", owners)}); " +
            "add it to GenerationControls.All, the one list every route reads.");

        // The entry writes and reads it back: persistence, FromJson and generation_config.json all see it.
        var back = GenerationOptions.FromJson(options.ToJson());
        Assert.Equal(options.ToJson(), back.ToJson());
        Assert.NotNull(info.GetValue(back));
    }

    [Fact]
    public void Library_defaults_come_from_the_list_and_cover_every_control_that_has_one()
    {
        var defaults = DecodingSettings.LibraryDefaults;
        string[] withoutDefault = ["max_new_tokens", "max_length", "eos_token_id", "stop_strings", "seed", "constraint"];
        foreach (var control in GenerationControls.All)
            Assert.True((control.Get(defaults) is null) == withoutDefault.Contains(control.Key),
                $"{control.Key}: library default {control.Get(defaults) ?? "none"}");
        Assert.Equal(1f, defaults.TypicalP);
        Assert.Equal(50, defaults.TopK);
    }

    [Fact]
    public void Every_command_line_flag_is_unique_and_each_value_flag_has_help_and_a_type_the_command_line_takes()
    {
        var flags = GenerationControls.CommandLine.ToList();
        Assert.Equal(flags.Count, flags.Select(c => c.Flag).Distinct().Count());
        Type[] taken = [typeof(int), typeof(float), typeof(IReadOnlyList<string>)];
        foreach (var control in flags)
        {
            Assert.False(string.IsNullOrWhiteSpace(control.Help), control.Key);
            Assert.True(control.SwitchValue is not null || taken.Contains(control.ValueType), control.Key);
        }
    }

    [Fact]
    public void Typical_p_is_read_from_generation_config_json_and_changes_what_sampling_draws()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        using (var plain = GptModel.Open(folder))
        {
            var baseline = plain.Generate(["Hello", "The", "A"], new GenerationOptions { DoSample = true, Seed = 11, MaxNewTokens = 12 });
            var typical = plain.Generate(["Hello", "The", "A"], new GenerationOptions { DoSample = true, Seed = 11, MaxNewTokens = 12, TypicalP = 0.2f });
            Assert.NotEqual(baseline.Select(r => r.TokenIds), typical.Select(r => r.TokenIds));
        }
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "generation_config.json"))).RootElement.EnumerateObject()
            .ToDictionary(p => p.Name, p => (object)p.Value.Clone());
        config["typical_p"] = 0.2;
        File.WriteAllText(Path.Combine(folder, "generation_config.json"), JsonSerializer.Serialize(config));
        using var model = GptModel.Open(folder);
        Assert.Equal(0.2f, model.Info.Defaults.TypicalP);
        using var again = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var explicitly = again.Generate(["Hello", "The", "A"], new GenerationOptions { DoSample = true, Seed = 11, MaxNewTokens = 12, TypicalP = 0.2f });
        var fromConfig = model.Generate(["Hello", "The", "A"], new GenerationOptions { DoSample = true, Seed = 11, MaxNewTokens = 12 });
        Assert.Equal(explicitly.Select(r => r.TokenIds), fromConfig.Select(r => r.TokenIds));
    }
}
