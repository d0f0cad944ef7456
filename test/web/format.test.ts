import { describe, expect, it } from "vitest";
import { dateTimeHint, formatDate, parseDateTime } from "../../web/src/lib/format.ts";

/**
 * The console's one date form: what formatDate writes for a locale, a date input of that locale reads
 * back as the same minute, whatever order, separators or AM/PM the locale uses.
 */
describe("console dates in the browser's locale", () => {
  const moments = [new Date(2031, 2, 1, 12, 0), new Date(2026, 11, 31, 0, 5), new Date(2027, 0, 9, 23, 59)];

  it.each(["en-GB", "en-US", "de-DE", "fr-FR", "ja-JP", "nl-NL", "pt-BR", "ko-KR"])(
    "reads back what it writes in %s",
    (locale) => {
      for (const d of moments) {
        const text = formatDate(d, locale);
        expect(parseDateTime(text, locale)?.getTime(), `${locale}: ${text}`).toBe(d.getTime());
      }
    },
  );

  it("writes each locale's own order", () => {
    const d = new Date(2031, 2, 1, 13, 45);
    expect(formatDate(d, "en-GB")).toBe("01/03/2031, 13:45");
    expect(formatDate(d, "de-DE")).toBe("01.03.2031, 13:45");
    expect(formatDate(d, "en-US").replace("\u202f", " ")).toBe("03/01/2031, 01:45 PM");
    expect(dateTimeHint("en-GB")).toBe("DD/MM/YYYY, HH:MM");
    expect(dateTimeHint("de-DE")).toBe("DD.MM.YYYY, HH:MM");
    // Some runtimes put a narrow no-break space before AM/PM.
    expect(dateTimeHint("en-US").replace("\u202f", " ")).toBe("MM/DD/YYYY, HH:MM AM/PM");
  });

  it("takes a date typed loosely: other separators, no leading zeros, no time", () => {
    expect(parseDateTime("1.3.2031 12:00", "de-DE")).toEqual(new Date(2031, 2, 1, 12, 0));
    expect(parseDateTime("1/3/2031", "en-GB")).toEqual(new Date(2031, 2, 1));
    expect(parseDateTime("3/1/2031 1:45 pm", "en-US")).toEqual(new Date(2031, 2, 1, 13, 45));
    expect(parseDateTime("3/1/2031, 12:00 AM", "en-US")).toEqual(new Date(2031, 2, 1, 0, 0));
  });

  it.each([
    ["2031-03-01 12:00", "de-DE"],
    ["31.02.2031, 12:00", "de-DE"],
    ["01.13.2031", "de-DE"],
    ["01.03.2031, 24:00", "de-DE"],
    ["01.03.2031, 12:60", "de-DE"],
    ["01.03.31", "de-DE"],
    ["tomorrow", "en-GB"],
    ["01/03/2031, 12:00 noon", "en-GB"],
    ["03/01/2031, 13:00 PM", "en-US"],
    ["", "en-GB"],
  ])("refuses %j in %s", (text, locale) => {
    expect(parseDateTime(text, locale)).toBeNull();
  });
});
