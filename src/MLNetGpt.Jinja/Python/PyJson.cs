using System.Globalization;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>
/// Python's <c>json.dumps(value, ensure_ascii, indent, separators, sort_keys)</c>, which is what Hugging Face's
/// chat-template <c>tojson</c> filter calls: no HTML escaping, floats as Python's repr, NaN/Infinity allowed.
/// </summary>
internal static class PyJson
{
    public static string Dumps(object? value, bool ensureAscii, object? indent, object? separators, bool sortKeys)
    {
        string? indentText = indent switch
        {
            null => null,
            string s => s,
            long or bool => Indentation(PyOps.AsLong(indent)),
            Undefined u => throw u.Error(),
            _ => throw TemplateException.TypeError($"can't multiply sequence by non-int of type {PyFormat.Repr(PyOps.TypeName(indent))}"),
        };
        string itemSeparator = indentText is null ? ", " : ",";
        var keySeparator = ": ";
        if (separators is not null)
        {
            var parts = separators switch
            {
                PyTuple t => t.Items,
                PyList l => l.Items.ToArray(),
                _ => throw TemplateException.TypeError($"cannot unpack non-iterable {PyOps.TypeName(separators)} object"),
            };
            if (parts.Length != 2)
                throw TemplateException.ValueError(parts.Length > 2 ? "too many values to unpack (expected 2)" : $"not enough values to unpack (expected 2, got {parts.Length})");
            itemSeparator = parts[0] as string ?? throw TemplateException.TypeError("separators must be strings");
            keySeparator = parts[1] as string ?? throw TemplateException.TypeError("separators must be strings");
        }
        var writer = new Writer(ensureAscii, indentText, itemSeparator, keySeparator, sortKeys);
        writer.Write(value, 0);
        var text = writer.ToString();
        RenderState.ChargeString(text.Length, "the JSON text");
        return text;
    }

    private static string Indentation(long width)
    {
        if (width <= 0) return "";
        RenderState.ChargeString(width, "the JSON indentation");
        return new string(' ', (int)width);
    }

    private sealed class Writer
    {
        private readonly StringBuilder sb = new();
        private readonly bool ensureAscii;
        private readonly string? indent;
        private readonly string itemSeparator;
        private readonly string keySeparator;
        private readonly bool sortKeys;

        public Writer(bool ensureAscii, string? indent, string itemSeparator, string keySeparator, bool sortKeys)
        {
            this.ensureAscii = ensureAscii;
            this.indent = indent;
            this.itemSeparator = itemSeparator;
            this.keySeparator = keySeparator;
            this.sortKeys = sortKeys;
        }

        public override string ToString() => sb.ToString();

        public void Write(object? value, int level)
        {
            RenderState.EnsureValueDepth(level, "while encoding a JSON object");
            // Checked as the text grows: the same long string a million times over is refused, not written.
            if (sb.Length > (RenderState.Current?.Limits ?? TemplateLimits.Default).MaxValueLength)
                RenderState.ChargeString(sb.Length, "the JSON text");
            switch (value)
            {
                case string s: WriteString(s); break;
                case null: sb.Append("null"); break;
                case bool b: sb.Append(b ? "true" : "false"); break;
                case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
                case double d: sb.Append(FloatText(d)); break;
                case PyList list: WriteArray(list.Items, level); break;
                case PyTuple tuple: WriteArray(tuple.Items, level); break;
                case PyDict dict: WriteObject(dict, level); break;
                default:
                    throw TemplateException.TypeError($"Object of type {PyOps.TypeName(value)} is not JSON serializable");
            }
        }

        private static string FloatText(double d) =>
            double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyFormat.FloatRepr(d);

        private void NewLine(int level)
        {
            sb.Append('\n');
            if ((long)level * indent!.Length + sb.Length > (RenderState.Current?.Limits ?? TemplateLimits.Default).MaxValueLength)
                RenderState.ChargeString((long)level * indent.Length + sb.Length, "the JSON text");
            for (var i = 0; i < level; i++) sb.Append(indent);
        }

        private void WriteArray(IReadOnlyList<object?> items, int level)
        {
            if (items.Count == 0)
            {
                sb.Append("[]");
                return;
            }
            sb.Append('[');
            if (indent is not null) NewLine(level + 1);
            for (var i = 0; i < items.Count; i++)
            {
                if (i > 0)
                {
                    sb.Append(itemSeparator);
                    if (indent is not null) NewLine(level + 1);
                }
                Write(items[i], level + 1);
            }
            if (indent is not null) NewLine(level);
            sb.Append(']');
        }

        private void WriteObject(PyDict dict, int level)
        {
            if (dict.Count == 0)
            {
                sb.Append("{}");
                return;
            }
            IEnumerable<KeyValuePair<object?, object?>> entries = dict.Entries;
            if (sortKeys) entries = PyOps.Sorted(dict.Entries, e => e.Key);
            sb.Append('{');
            if (indent is not null) NewLine(level + 1);
            var first = true;
            foreach (var (key, item) in entries)
            {
                if (!first)
                {
                    sb.Append(itemSeparator);
                    if (indent is not null) NewLine(level + 1);
                }
                first = false;
                WriteString(key switch
                {
                    string s => s,
                    double d => FloatText(d),
                    bool b => b ? "true" : "false",
                    null => "null",
                    long l => l.ToString(CultureInfo.InvariantCulture),
                    _ => throw TemplateException.TypeError($"keys must be str, int, float, bool or None, not {PyOps.TypeName(key)}"),
                });
                sb.Append(keySeparator);
                Write(item, level + 1);
            }
            if (indent is not null) NewLine(level);
            sb.Append('}');
        }

        private void WriteString(string s)
        {
            if (sb.Length + (long)s.Length > (RenderState.Current?.Limits ?? TemplateLimits.Default).MaxValueLength)
                RenderState.ChargeString(sb.Length + (long)s.Length, "the JSON text");
            sb.Append('"');
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < ' ' || (ensureAscii && c > '~'))
                            sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }
}
