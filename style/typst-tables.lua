-- PDF only: let typst size table columns to their content.
--
-- A Markdown pipe table whose lines are long gets relative column widths from
-- the lengths of its dashed separator line, which tabulate sizes to the longest
-- cell. In the PDF that starves short columns (a dataset's name overprinted
-- the next column). Typst's automatic column widths fit the content and wrap
-- long cells instead. The HTML keeps pandoc's widths (its tables scroll).
function Table(tbl)
  if not quarto.doc.is_format("typst") then
    return nil
  end
  for i, spec in ipairs(tbl.colspecs) do
    tbl.colspecs[i] = { spec[1], pandoc.ColWidthDefault }
  end
  return tbl
end
