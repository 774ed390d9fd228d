using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetGpt.Generation.Constraints;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>Random texts for checking automata against independent references.</summary>
internal static class ConstraintTestKit
{
    /// <summary>
    /// A random accepted text: a walk that picks a random byte among those leading to a live state,
    /// stops at an accepting state with probability <paramref name="stop"/>, and once past
    /// <paramref name="softLength"/> bytes heads for acceptance along the shortest remaining path.
    /// </summary>
    public static byte[] RandomWalk(ByteDfa dfa, Random random, int softLength = 40, double stop = 0.15)
    {
        var bytes = new List<byte>();
        int state = dfa.Start;
        var live = new List<(byte Byte, int Next)>();
        while (true)
        {
            if (dfa.IsAccepting(state) && (!dfa.HasContinuation(state) || random.NextDouble() < stop)) break;
            live.Clear();
            for (int b = 0; b < 256; b++)
            {
                int next = dfa.Next(state, (byte)b);
                if (next != ByteDfa.Dead) live.Add(((byte)b, next));
            }
            if (bytes.Count > softLength)
            {
                int best = live.Min(l => dfa.MinBytesToAccept(l.Next));
                live.RemoveAll(l => dfa.MinBytesToAccept(l.Next) > best);
                if (dfa.IsAccepting(state)) break;
            }
            var (chosen, to) = live[random.Next(live.Count)];
            bytes.Add(chosen);
            state = to;
        }
        return bytes.ToArray();
    }

    private static readonly string[] Pool =
    [
        "a", "z", "A", "0", "5", "9", "_", "-", ".", ",", ":", " ", "\n", "\t", "\"", "\\", "{", "}", "[", "]", "@", "x", "é", "ß", "日", "本", "€", "😀", "\u0001", "/", "+", "e",
    ];

    /// <summary>One to three random edits of the text's characters (deletions, insertions, replacements, duplications).</summary>
    public static string Mutate(string text, Random random)
    {
        var runes = text.EnumerateRunes().Select(r => r.ToString()).ToList();
        int edits = 1 + random.Next(3);
        for (int e = 0; e < edits; e++)
        {
            int at = runes.Count == 0 ? 0 : random.Next(runes.Count + 1);
            switch (random.Next(4))
            {
                case 0 when runes.Count > 0 && at < runes.Count: runes.RemoveAt(at); break;
                case 1: runes.Insert(at, Pool[random.Next(Pool.Length)]); break;
                case 2 when runes.Count > 0 && at < runes.Count: runes[at] = Pool[random.Next(Pool.Length)]; break;
                default:
                    if (runes.Count == 0) break;
                    int from = random.Next(runes.Count), length = 1 + random.Next(Math.Min(4, runes.Count - from));
                    runes.InsertRange(at, runes.GetRange(from, length));
                    break;
            }
        }
        return string.Concat(runes);
    }

    public static bool HasAstral(string text) => text.Any(char.IsSurrogate);

    /// <summary>Whether every string in the document has as many text elements as code points (JsonSchema.Net counts text elements).</summary>
    public static bool LengthsAgree(JsonNode? node) => node switch
    {
        JsonObject o => o.All(p => LengthsAgree(p.Value)),
        JsonArray a => a.All(LengthsAgree),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => CodePoints(v.GetValue<string>()) == new StringInfo(v.GetValue<string>()).LengthInTextElements,
        _ => true,
    };

    private static int CodePoints(string s) => s.EnumerateRunes().Count();

    /// <summary>
    /// Compact JSON in the canonical form the automata produce, written independently of the
    /// library: members in order, minimal string escapes (lowercase \u00xx for other controls),
    /// integral numbers as integers, other numbers as plain decimals. Null when a number cannot be
    /// written without an exponent, or a fraction lies beyond a double's precision.
    /// </summary>
    public static string? Canonical(JsonNode? node)
    {
        var sb = new StringBuilder();
        return Write(node, sb) ? sb.ToString() : null;
    }

    private static bool Write(JsonNode? node, StringBuilder sb)
    {
        switch (node)
        {
            case null:
                sb.Append("null");
                return true;
            case JsonObject o:
            {
                sb.Append('{');
                bool first = true;
                foreach (var (name, value) in o)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(name, sb);
                    sb.Append(':');
                    if (!Write(value, sb)) return false;
                }
                sb.Append('}');
                return true;
            }
            case JsonArray a:
            {
                sb.Append('[');
                for (int i = 0; i < a.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    if (!Write(a[i], sb)) return false;
                }
                sb.Append(']');
                return true;
            }
            default:
            {
                var value = node.AsValue();
                switch (value.GetValueKind())
                {
                    case JsonValueKind.String: WriteString(value.GetValue<string>(), sb); return true;
                    case JsonValueKind.True: sb.Append("true"); return true;
                    case JsonValueKind.False: sb.Append("false"); return true;
                    case JsonValueKind.Number:
                        if (!decimal.TryParse(value.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out decimal d)) return false;
                        // JsonSchema.Net judges "is an integer" through a double: past 2^53 a fraction is lost there.
                        if (d != decimal.Truncate(d) && Math.Abs(d) >= 9007199254740992m) return false;
                        sb.Append(d == decimal.Truncate(d) ? decimal.Truncate(d).ToString(CultureInfo.InvariantCulture)
                            : (d / 1.0000000000000000000000000000m).ToString(CultureInfo.InvariantCulture));
                        return true;
                    default: sb.Append("null"); return true;
                }
            }
        }
    }

    private static void WriteString(string s, StringBuilder sb)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\b' => "\\b",
                '\f' => "\\f",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < ' ' => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture),
                _ => c.ToString(),
            });
        }
        sb.Append('"');
    }

    /// <summary>
    /// The schema as JsonSchema.Net should see it under the library's documented readings:
    /// additionalProperties absent counts as false, and prefixItems without items allows no more items.
    /// </summary>
    public static string ForValidator(string schemaJson)
    {
        var node = JsonNode.Parse(schemaJson)!;
        Close(node);
        return node.ToJsonString();
    }

    private static void Close(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                if (o.ContainsKey("properties") && !o.ContainsKey("additionalProperties")) o["additionalProperties"] = false;
                if (o.ContainsKey("prefixItems") && !o.ContainsKey("items")) o["items"] = false;
                foreach (var (_, child) in o.ToList()) Close(child);
                break;
            case JsonArray a:
                foreach (var child in a) Close(child);
                break;
        }
    }

    /// <summary>Value-level edits of a JSON document that keep member order: drop a member or element, change a value.</summary>
    public static JsonNode? MutateValue(JsonNode? root, Random random)
    {
        var copy = root?.DeepClone();
        var all = new List<JsonNode?>();
        Collect(copy, all);
        int edits = 1 + random.Next(2);
        for (int e = 0; e < edits; e++)
        {
            var target = all[random.Next(all.Count)];
            if (target is null || target.Parent is null)
            {
                if (random.Next(3) == 0) return RandomValue(random, null);
                continue;
            }
            var parent = target.Parent;
            int choice = random.Next(4);
            if (choice == 0)
            {
                if (parent is JsonObject po) po.Remove(po.First(p => ReferenceEquals(p.Value, target)).Key);
                else if (parent is JsonArray pa) pa.Remove(target);
            }
            else
            {
                var replacement = RandomValue(random, target);
                if (parent is JsonObject po) po[po.First(p => ReferenceEquals(p.Value, target)).Key] = replacement;
                else if (parent is JsonArray pa) pa[pa.IndexOf(target)] = replacement;
            }
            all.Clear();
            Collect(copy, all);
        }
        return copy;
    }

    private static void Collect(JsonNode? node, List<JsonNode?> into)
    {
        into.Add(node);
        if (node is JsonObject o) foreach (var (_, v) in o) Collect(v, into);
        if (node is JsonArray a) foreach (var v in a) Collect(v, into);
    }

    private static JsonNode? RandomValue(Random random, JsonNode? near)
    {
        var kind = near?.GetValueKind();
        switch (random.Next(8))
        {
            case 0: return null;
            case 1: return JsonValue.Create(random.Next(2) == 0);
            case 2 when kind == JsonValueKind.Number && decimal.TryParse(near!.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d):
                return JsonValue.Create(random.Next(5) switch { 0 => d + 1, 1 => d - 1, 2 => -d, 3 => d * 10, _ => d + 0.5m });
            case 3 when kind == JsonValueKind.String:
                return JsonValue.Create(Mutate(near!.GetValue<string>(), random));
            case 4: return JsonValue.Create(random.Next(-2000, 2000));
            case 5: return JsonValue.Create(Mutate("ab", random));
            case 6: return new JsonArray(JsonValue.Create(1));
            default:
                return near is null ? JsonValue.Create(0) : near.DeepClone();
        }
    }
}
