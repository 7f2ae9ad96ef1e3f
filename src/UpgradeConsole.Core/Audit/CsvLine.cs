using System.Text;

namespace UpgradeConsole.Core.Audit;

/// <summary>
/// One RFC 4180 CSV record: fields with a comma, quote, CR or LF are quoted (quotes doubled); a field
/// a spreadsheet would read as a formula (starting with = + - @, tab or CR) gets a leading
/// apostrophe, so an exported audit history cannot run what a user typed.
/// </summary>
public static class CsvLine
{
    public static string Format(IEnumerable<string?> fields)
    {
        var line = new StringBuilder();
        var first = true;
        foreach (var raw in fields)
        {
            if (!first)
            {
                line.Append(',');
            }

            first = false;
            var field = raw ?? "";
            if (field.Length > 0 && field[0] is '=' or '+' or '-' or '@' or '\t' or '\r')
            {
                field = "'" + field;
            }

            if (field.AsSpan().IndexOfAny(",\"\r\n") >= 0)
            {
                line.Append('"').Append(field.Replace("\"", "\"\"", StringComparison.Ordinal)).Append('"');
            }
            else
            {
                line.Append(field);
            }
        }

        return line.Append("\r\n").ToString();
    }
}
