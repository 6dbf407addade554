"""The tables and columns the linker reads, and the names they have in the real extracts.

:data:`TABLE_COLUMNS` (the package's names and the kind of each column), the lookups' keys, the keys shared by
several tables, the column names the linker derives (:data:`DERIVED_COLUMNS`: an input column with one of these
names is refused rather than silently used), and :data:`REAL_DATA_COLUMNS` (the names of the real ASHE, BSD,
ABS and ONSPD / NSPL variables, each verified against a cited document or marked unverified with what was searched;
issue 16).
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

__all__ = ["TABLE_COLUMNS", "REQUIRED_TABLES", "LOOKUP_KEYS", "SHARED_KEYS", "DERIVED_COLUMNS",
           "REAL_DATA_COLUMNS", "RealColumn", "STATUSES", "real_data_columns", "real_data_mapping"]

# Tables and columns the linker reads (package names) and the kind of each column.
#   id: integer or string key;  int: integer;  num: number;  str: string;  bool: boolean or 0/1;
#   any: any type.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "jobs": {
        "piden": "id", "year": "int", "entref": "id", "luref": "id", "gpay": "num", "hours": "num",
        "age": "num", "sex": "any", "soc": "any", "ft": "bool",
    },
    "local_units": {
        "luref": "id", "entref": "id", "year": "int", "postcode": "str", "sic07": "str", "employment": "num",
    },
    "enterprises": {
        "entref": "id", "year": "int", "sic07": "str", "employment": "num", "turnover": "num",
        "foreign_owned": "any",
    },
    "accounts": {
        "entref": "id", "year": "int", "gva": "num", "turnover": "num", "purchases": "num",
        "employment_costs": "num",
    },
    "postcode_lookup": {"postcode": "str", "lad": "str", "itl3": "str", "region": "str"},
    "entref_continuity": {"old_entref": "id", "new_entref": "id"},
    "place_characteristics": {
        "lad": "str", "year": "int", "density": "num", "transport_access": "num", "housing_cost": "num",
        "amenities": "num",
    },
    "cpi": {"year": "int", "cpih": "num"},
}

#: Tables without which no panel can be built; the others are optional (their steps are skipped and the
#: ledger says so).
REQUIRED_TABLES = ("jobs", "local_units", "postcode_lookup", "cpi")

#: Lookups must have unique keys.
LOOKUP_KEYS = {
    "local_units": ("luref", "year"),
    "enterprises": ("entref", "year"),
    "accounts": ("entref", "year"),
    "postcode_lookup": ("postcode",),
    "entref_continuity": ("old_entref",),
    "place_characteristics": ("lad", "year"),
    "cpi": ("year",),
}

# Key columns that must have the same type in every table they join.
SHARED_KEYS = {
    "entref": [("jobs", "entref"), ("local_units", "entref"), ("enterprises", "entref"),
               ("accounts", "entref"), ("entref_continuity", "old_entref"),
               ("entref_continuity", "new_entref")],
    "luref": [("jobs", "luref"), ("local_units", "luref")],
}

#: Columns the linker derives or uses internally. An input column of ``jobs`` or ``local_units`` (beyond
#: :data:`TABLE_COLUMNS`) with one of these names is renamed ``<name>_input`` with a ledger line
#: (``derived_names``) and never used in place of the linker's own column.
DERIVED_COLUMNS = frozenset({
    "lad", "itl3", "region", "place", "sic07", "industry", "firm_size", "size_band", "hw", "lhw", "ww", "lww",
    "entref_raw", "lu_entref", "_lu_found", "_pc_found", "_placed", "_bucket", "_lo", "_hi", "_ent", "_acc", "_plc",
})

class RealColumn(NamedTuple):
    """One entry of :data:`REAL_DATA_COLUMNS`.

    ``real``: the variable's name in the extract (or a DuckDB SQL expression over its columns); ``status``: ``"V"``
    verified (the name and its meaning are shown in the document of ``citation``) or ``"U"`` unverified (check it
    against the data dictionary of your extract before running); ``note``: what the variable is and what to watch;
    ``citation``: for ``"V"``, the document, its section or page, and the address it was read at; ``searched``:
    what was searched for it (corpus and query) and what was found, so that a ``"U"`` says why it is still one.
    """

    real: str
    status: str
    note: str
    citation: str
    searched: str


#: The statuses of :data:`REAL_DATA_COLUMNS`: verified against a document, or not.
STATUSES = {"V": "verified: the name and its meaning are shown in the cited document",
            "U": "unverified: check it against the data dictionary of your extract before running"}

# Documents read (through the project's search tool, in stored copies; the names were checked in the excerpt seen).
_ASHE_DOC = ("ONS, 'Annual Survey of Hours and Earnings (ASHE) dataset user documentation' (UK Data Archive SN 6689, "
             "Secure Access), list 'Variables in the ASHE dataset', p. 3 of 51; copy at "
             "https://docslib.org/download/1839998/user-guide-2006")
_NSPL_LAYOUT = ("ONS, National Statistics Postcode Lookup (NSPL) user guide, record layout (length, data "
                "description, field name), as reproduced in github.com/elb98rm/postcode-tools "
                "docs/main/nspl_properties.md; the NSPL CSV field names in the same repository, src/NSPLTrait.php")
_ONSPD_2024 = ("ONS Postcode Directory, August 2024 CSV header and rows, as reproduced in github.com/DemocracyClub/"
               "uk-geo-utils uk_geo_utils/fixtures/onspd_aug2024/onspd_test.csv")
_ONSPD_2025 = ("ONS Postcode Directory, November 2025 CSV header (github.com/DemocracyClub/uk-geo-utils "
               "uk_geo_utils/fixtures/onspd_nov2025/onspd_test.csv) and its field descriptions "
               "(uk_geo_utils/models.py, AbstractOnspd)")
_ITL_LOOKUP = ("lookup LAD23_LAU121_ITL321_ITL221_ITL121_UK_LU (fields LAD23CD, LAU121CD, ITL321CD, ITL221CD, "
               "...), on the ArcGIS service that also serves ONSPD_LATEST_UK: https://services1.arcgis.com/"
               "ESMARspQHYMw9BZ9/arcgis/rest/services/LAD23_LAU121_ITL321_ITL221_ITL121_UK_LU/FeatureServer/0")

_AUDOLY = ("R. Audoly, replication package of 'Firm Dynamics and Random Search over the Business Cycle' (Journal "
           "of Monetary Economics, 2026), https://github.com/raudoly/Audoly_2026_JME (commit c321d71)")
_BSD_CODE = (f"{_AUDOLY}, code/step1_firm_micro_data/bds/extract.do ('Valid for the 10th edition') and build.do: a "
             "researcher's code, not the data documentation, that reads the raw SN 6697 files by variable name with "
             "Stata's 'use <names> using <file>' (which fails on an absent name): the enterprise files "
             "eu_bsd_<year>_restricted ('firm waves') and the local-unit files lu_bsd_<year>_restricted "
             "('establishment waves')")
_ABS_CODE = (f"{_AUDOLY}, code/step1_firm_micro_data/ard_abs/build.do: a researcher's code, not the data "
             "documentation, that appends the raw SN 7451 files dat<year>_final_restricted (2008-2017; 2018 "
             "'revised', 2019 'provisional') and renames their variables")

# What was searched (corpus: query), and what the searches found.
_S_ASHE = (
    "pages: 'Annual Survey of Hours and Earnings secure access UK Data Service 6689 variable list piden thrs', "
    "'ASHE dataset user documentation variables gpay gross weekly pay thrs total paid hours basic hours overtime', "
    "'Gpay Gross weekly pay in reference period; Basic paid hours; Thrs total paid hours', 'UK Data Archive Study "
    "Number 6689 ASHE dataset user documentation variables in the ASHE dataset', '6689 mrdoc pdf ASHE user guide "
    "variables', 'researchers using ASHE microdata variable gpay thrs hourly pay excluding overtime hexo'; docs: "
    "'ASHE Annual Survey of Hours and Earnings secure access SN 6689 variables piden gpay', 'ASHE secure access "
    "data dictionary work postcode thrs gpay occ entref', 'ASHE Gpay gross pay Bhr basic hours Ovhrs paid overtime "
    "hours Thrs'; code: 'ASHE microdata variables piden entref luref gpay basic paid hours thrs occ', 'ASHE panel "
    "Stata code gpay thrs piden year merge BSD entref'; find_string: 'piden'. Found: the first page of the variable "
    "list of the ASHE dataset user documentation (Year ... Mjob; https://docslib.org/download/1839998/"
    "user-guide-2006), the SN 6689 catalogue abstract and http://doc.ukdataservice.ac.uk/doc/6689/read6689.htm. "
    "Searched again (second pass): pages: 'ASHE dataset user documentation Gpay gross weekly pay Thrs total paid hours "
    "Occ', 'ASHE user guide variables in the ASHE dataset Piden Year Mjob', 'docslib user guide 2006 Annual Survey of "
    "Hours and Earnings dataset user documentation', 'ASHE microdata hourly earnings excluding overtime variable "
    "hexo gross weekly pay gpay total paid hours thrs researchers'; code: 'Annual Survey of Hours and Earnings "
    "microdata variables hexo gpay basic paid hours bhr', 'ASHE piden Stata use ashe panel keep piden year gpay', "
    "'do file uses the Annual Survey of Hours and Earnings ASHE Secure Lab hourly wage piden thrs basic pay'; "
    "find_string: 'gpay', 'hexo', 'ashe'. Found nothing further: no later page of the variable list and no public "
    "code that reads ASHE by variable name")
_S_ASHE_IDS = (_S_ASHE + "; pages: 'ASHE dataset variables entref enterprise reference luref local unit reference "
               "IDBR', 'IDBR enterprise reference entref local unit luref reporting unit ruref'. The SN 6689 abstract "
               "says ASHE carries 'unique business identifiers' that link it to the ABS (SN 7451) and read6689.htm "
               "that the restricted file has the work postcode, but neither names the variable")
_S_BSD = (
    "pages: 'Business Structure Database secure access user guide variables entref luref postcode employment "
    "turnover foreign ownership', 'Business Structure Database user guide Virtual Microdata Laboratory local unit "
    "variables list', 'IDBR enterprise reference entref local unit luref reporting unit ruref'; docs: 'Business "
    "Structure Database variable list local unit file luref entref pcode employment sic2007', 'UK Data Service study "
    "6697 Business Structure Database 1997-2023 Secure Access'; code: 'Business Structure Database BSD Stata do file "
    "entref luref employment turnover sic2007 foreign ownership merge ASHE'; find_string: 'luref', 'entref'. Found: "
    "the SN 6697 catalogue abstract (http://discover.ukdataservice.ac.uk/catalogue?sn=6697) and "
    "http://www.esds.ac.uk/doc/6697/read6697.htm (enterprise and local-unit files; employment, employees, SIC "
    "1992/2003/2007, legal status, foreign ownership, birth and death; anonymised postcodes; variables 'demvar', "
    "'demvarred'), none with the names used here. Searched again (second pass): pages: 'Business Structure Database "
    "variables luref entref employment employees turnover sic2007 postcode local unit', 'BSD User Guide variables "
    "enterprise file entref local unit file luref employment employees turnover pcode sic' (found the 2006 BSD User "
    "Guide, SN 6697, https://vdocument.in/bsd-user-guide-uk-data-bsd-contains-information-on-21-million-enterprises-"
    "if.html, of which only the contents pages were readable); code: 'Business Structure Database entref luref'; "
    "find_string: 'Business Structure Database', which found the public replication code of Audoly (2026, "
    f"{_AUDOLY}) that reads the raw enterprise and local-unit files by name (the source of the 'V' rows of "
    "local_units and enterprises), and a coagglomeration do-file (project folder 53523_Sorting) that uses "
    "'postcode', 'lu_empli', 'dlink_ref' and 'entref' on derived files idbr_intx4_<year> (not the raw BSD names)")
_S_ABS = (
    "pages: 'Annual Business Survey secure access SN 7451 variables approximate gross value added basic prices total "
    "purchases employment costs', 'Annual Business Survey 1998-2022 Secure Access study 7451 UK Data Service'. Found: "
    "the SN 7451 catalogue abstract (CESSDA), the ONS ABS technical report and QMI and the Scottish ABS definitions "
    "(turnover, purchases of goods and services, aGVA at basic prices, employment costs defined), none with the "
    "microdata variable names. Searched again (second pass): code: 'Annual Business Survey Stata ren wq450 employment "
    "costs wq630 approximate gross value added basic prices'; find_string: 'wq630', 'wq450' (no ABS hit); read_file: "
    f"{_AUDOLY}, code/step1_firm_micro_data/ard_abs/build.do, which reads the raw ABS files and renames wq450 "
    "(total employment costs), wq611, wq612 and wq630 (GVA at market prices, factor cost and basic prices) and "
    "'turnover' (to turnover_idbr: the register's turnover, not the survey's); no purchases variable is read there")
_S_PC = (
    "pages: 'National Statistics Postcode Lookup user guide field pcds laua rgn itl', 'ONS Postcode Directory user "
    "guide record specification pcds laua rgn field names'; docs: 'ONS Postcode Directory ONSPD field pcds laua rgn "
    "itl'; code: 'ONSPD columns pcd pcd2 pcds laua rgn itl ctry lsoa11'; find_string: 'variable length (e-Gif)'; "
    "read_file: elb98rm/postcode-tools docs/main/nspl_properties.md and src/NSPLTrait.php, DemocracyClub/uk-geo-utils "
    "fixtures onspd_aug2024 and onspd_nov2025")
_S_CONT = ("pages: 'IDBR enterprise reference entref local unit luref reporting unit ruref Inter-Departmental Business "
           "Register'; plus the BSD searches (" + _S_BSD.split(". Found")[0] + "). Nothing found on how IDBR "
           "reference changes are released to researchers. Searched again (second pass): the BSD searches above; "
           "the Audoly (2026) BSD code follows enterprises by entref only and reads no continuity table")
_S_ASSEMBLED = ("not a variable of any extract: a table the researcher assembles from public series, so there is no "
                "data dictionary to verify it against; name it as you like and pass that name")
_S_CPI = ("pages: 'CPIH index 00: all items 2015=100 series L522'; docs: 'ONS CPIH INDEX 00 ALL ITEMS 2015=100 L522 "
          "time series'. Found: the ONS notice re-referencing CPI and CPIH to 2015=100 (gov.uk) and third-party tool "
          "pages on the ONS dataset cpih01, one of which calls series L55O the CPIH index; no ONS page with the series "
          "id L522 was seen. Searched again (second pass): code: 'L522 CPIH INDEX 00: ALL ITEMS 2015=100'; "
          "find_string: 'timeseries/l522/mm23', which found several public programs that download "
          "https://www.ons.gov.uk/economy/inflationandpriceindices/timeseries/l522/mm23 and quote its ONS title, "
          "'CPIH INDEX 00: ALL ITEMS 2015=100' (dataset MM23): the id is confirmed by those copies, not by an ONS "
          "page seen here. The column itself is the researcher's: 'U' because the table is assembled")

#: Package name -> real variable, per table (:class:`RealColumn`: ``real, status, note, citation, searched``).
#: Status ``"V"``: the name and its meaning are shown in the cited document (seen through the project's search
#: tool, issue 16); ``"U"``: unverified, with what was searched. Check every ``"U"`` row against the data dictionary
#: of your extract before running, and the ``"V"`` rows against your extract's vintage (names change between
#: releases: the notes say where they are known to).
REAL_DATA_COLUMNS: dict[str, dict[str, RealColumn]] = {
    "jobs": {
        "piden": RealColumn(
            "piden", "V", "ASHE (SN 6689): random person identifier, stable over years (written 'Piden' in the guide)",
            f"{_ASHE_DOC}: 'Piden', personal identifier, a random identifier for the multiple occurrences of the same "
            "person in the dataset", _S_ASHE),
        "year": RealColumn(
            "year", "V", "ASHE: survey year; the reference date is in April",
            f"{_ASHE_DOC}: 'Year', the year of the inquiry, whose reference date is always in April", _S_ASHE),
        "entref": RealColumn("entref", "U", "IDBR enterprise reference carried by ASHE", "", _S_ASHE_IDS),
        "luref": RealColumn("luref", "U", "IDBR local-unit reference; if absent, link the work postcode directly", "",
                            _S_ASHE_IDS),
        "gpay": RealColumn("gpay", "U", "gross weekly pay (GBP)", "", _S_ASHE),
        "hours": RealColumn("thrs", "U", "total paid weekly hours (basic + paid overtime)", "", _S_ASHE),
        "age": RealColumn(
            "age", "V", "age at the April reference date (16 and over only)",
            f"{_ASHE_DOC}: 'Age', the age at the survey reference date; only people aged 16 and over", _S_ASHE),
        "sex": RealColumn("sex", "V", "1 male, 2 female",
                          f"{_ASHE_DOC}: 'Sex', 1 = male, 2 = female, no missing values", _S_ASHE),
        "soc": RealColumn("occ", "U", "SOC code with a vintage suffix (e.g. occ10, occ20); take the major group", "",
                          _S_ASHE + "; pages: 'ASHE occupation variable occ SOC2010 four digit code secure access "
                          "dataset'"),
        "ft": RealColumn(
            "ft", "V", "1 full-time, 2 part-time (the linker keeps ft = 1 as full time: the same coding)",
            f"{_ASHE_DOC}: 'Ft', full / part time marker, 1 = full time, 2 = part time", _S_ASHE),
    },
    "local_units": {
        "luref": RealColumn(
            "luref", "V", "BSD (SN 6697) local-unit reference, the key of the local-unit files",
            f"{_BSD_CODE}: 'use luref entref year employment employees birth* using lu_bsd_<year>_restricted', the "
            "establishment waves de-duplicated on year and luref", _S_BSD),
        "entref": RealColumn(
            "entref", "V", "enterprise owning the local unit (the local-unit files carry it)",
            f"{_BSD_CODE}: read from lu_bsd_<year>_restricted with luref; the establishment data are summed to "
            "firm-years 'by(entref year)'", _S_BSD),
        "year": RealColumn(
            "year", "V", "April snapshot year. In the local-unit files to 2016 only: the 2017 and 2018 files (10th "
            "edition) have no 'year', so add the file's year as a column before linking",
            f"{_BSD_CODE}: 'year' read from lu_bsd_<year>_restricted to 2016; for later files 'gen int year = "
            "<year>'", _S_BSD),
        "postcode": RealColumn("postcode", "U", "local-unit postcode (the BSD has postcodes; read6697.htm says "
                               "anonymised postcodes are missing for some cases; name unverified)", "", _S_BSD),
        "sic07": RealColumn("sic07", "U", "SIC 2007, 5 digits as text (the code cited for the enterprise files "
                            "reads no SIC from the local-unit files)", "", _S_BSD),
        "employment": RealColumn(
            "employment", "V", "local-unit employment; the files also have 'employees', which excludes working "
            "owners (read6697.htm)",
            f"{_BSD_CODE}: 'employment' and 'employees' read from lu_bsd_<year>_restricted and summed to "
            "enterprise-years", _S_BSD),
    },
    "enterprises": {
        "entref": RealColumn(
            "entref", "V", "BSD enterprise reference, the key of the enterprise files",
            f"{_BSD_CODE}: 'use entref employ* birth turnover sic* year active using eu_bsd_<year>_restricted'; "
            "build.do: 'Everything is at the enterprise (\"entref\") level'", _S_BSD),
        "year": RealColumn(
            "year", "V", "April snapshot year; in the enterprise files to 2016 only (add the file's year for 2017 "
            "and 2018, as for the local units)",
            f"{_BSD_CODE}: 'year' read from eu_bsd_<year>_restricted to 2016; 'gen int year = <year>' after",
            _S_BSD),
        "sic07": RealColumn(
            "sic07", "V", "SIC 2007, 5 digits, in the enterprise files from 2007 ('sic' holds SIC 1992, and SIC "
            "2003 in 2003-2005; 'sic03' SIC 2003). Some waves store it as a number, which drops the leading zero "
            "and which the linker refuses: pass the expression lpad(CAST(sic07 AS VARCHAR), 5, '0')",
            f"{_BSD_CODE}: 'sic*' read from eu_bsd_<year>_restricted; sic07 and sic03 'present' together in "
            "2007-2017; the codes are turned into text and padded to 5 characters ('sometimes leading zero is "
            "dropped')", _S_BSD),
        "employment": RealColumn(
            "employment", "V", "enterprise employment (size classes micro < 10, small < 50, medium < 250 in the "
            "code cited); 'employees' is next to it",
            f"{_BSD_CODE}: 'employ*' read from eu_bsd_<year>_restricted; build.do uses 'employment' and "
            "'employees' of the enterprise files", _S_BSD),
        "turnover": RealColumn(
            "turnover", "V", "enterprise turnover, GBP thousands",
            f"{_BSD_CODE}: 'turnover' read from eu_bsd_<year>_restricted; build.do drops enterprises with "
            "'turnover' below the VAT threshold written 'in K£'", _S_BSD),
        "foreign_owned": RealColumn("foreign_owned", "U", "foreign ownership marker (in the BSD per read6697.htm; "
                                    "name not seen)", "", _S_BSD),
    },
    "accounts": {
        "entref": RealColumn(
            "entref", "V", "enterprise reference in the ABS (SN 7451) files, stored as text: cast it to the type of "
            "the BSD's entref (e.g. CAST(entref AS BIGINT)), since a key must have one type in every table. The "
            "ABS rows are reporting units ('ruref'): sum them to enterprise-years first (accounts has one row per "
            "entref and year)",
            f"{_ABS_CODE}: 'keep entref ruref year sic07 ...' after dropping empty (text) entref, later "
            "'destring entref' and totals 'by entref year'", _S_ABS),
        "year": RealColumn(
            "year", "V", "reference year; two-digit in some files (the code cited maps 15-19 to 2015-2019): "
            "pass CASE WHEN year < 100 THEN year + 2000 ELSE year END",
            f"{_ABS_CODE}: 'replace year = 2015 if year==15' (and 16, 17, 18, 19)", _S_ABS),
        "gva": RealColumn(
            "wq630", "V", "approximate GVA at basic prices (aGVA); wq611 and wq612 are GVA at market prices and at "
            "factor cost",
            f"{_ABS_CODE}: 'ren wq630 gva_bp // Basic price', 'ren wq611 gva_mp', 'ren wq612 gva_fc'", _S_ABS),
        "turnover": RealColumn("turnover", "U", "total turnover. The ABS files' 'turnover' is the register's "
                               "(IDBR) turnover according to the code cited for wq630 (renamed turnover_idbr), not "
                               "the survey's; the survey item's name was not found", "", _S_ABS),
        "purchases": RealColumn("purchases", "U", "total purchases of goods and services; name not found", "",
                                _S_ABS),
        "employment_costs": RealColumn(
            "wq450", "V", "total employment costs",
            f"{_ABS_CODE}: 'ren wq450 totempcost'", _S_ABS),
    },
    "postcode_lookup": {
        "postcode": RealColumn(
            "pcds", "V", "the variable-length postcode (one space between outward and inward code); the same name in "
            "the NSPL and in the ONSPD of August 2024 and November 2025",
            f"{_NSPL_LAYOUT}: field PCDS, 'Unit postcode - variable length (e-Gif) version'; {_ONSPD_2024} and "
            f"{_ONSPD_2025}: column pcds", _S_PC),
        "lad": RealColumn(
            "laua", "V", "local authority district (LAD/UA/MD/LB) code: 'laua' in the NSPL; the ONSPD calls it "
            "'oslaua' (August 2024) and 'lad25cd' (November 2025): map the name of your vintage",
            f"{_NSPL_LAYOUT}: field LAUA, 'Local Authority District (LAD)/unitary authority (UA)/ metropolitan "
            f"district (MD)/ London borough (LB)/...', codes E06-E09 in England; {_ONSPD_2024}: column oslaua; "
            f"{_ONSPD_2025}: lad25cd", _S_PC),
        "itl3": RealColumn(
            "ITL321CD", "U", "ITL3 code, from the LAD -> LAU1 -> ITL lookup joined onto the directory by district "
            "first (the column is named for the lookup's vintage: ITL 2021 here)."
            " Do not map the directories' own 'itl' field: it holds the LAU1 code (E07000240, St Albans, for "
            "AL1 1AA in the August 2024 ONSPD, the same as oslaua; 'itl25cd' S30000026 in November 2025), and the "
            "older 'nuts' field the LAU2 area",
            "", _S_PC + f". Seen: {_ONSPD_2024} (itl = the district's LAU1 code); {_NSPL_LAYOUT} (NUTS = 'LAU2 "
            f"area'); the {_ITL_LOOKUP}, whose field list shows ITL321CD but not its description, hence 'U'"),
        "region": RealColumn(
            "rgn", "V", "region (former GOR) code: 'rgn' in the NSPL CSV and the ONSPD to August 2024, 'rgn25cd' in "
            "November 2025 (the NSPL record layout calls the field GOR)",
            f"{_NSPL_LAYOUT}: 'Region (former GOR)', codes E12000001-E12000009 in England (field GOR in the layout, "
            f"rgn in the CSV names); {_ONSPD_2024}: column rgn (E12000006 for AL1 1AA); {_ONSPD_2025}: rgn25cd, "
            "'Region (former GOR)'", _S_PC),
    },
    "entref_continuity": {
        "old_entref": RealColumn("old_entref", "U", "IDBR continuity: reference before a reorganisation", "", _S_CONT),
        "new_entref": RealColumn("new_entref", "U", "reference after the reorganisation", "", _S_CONT),
    },
    "place_characteristics": {
        "lad": RealColumn("lad", "U", "assembled by the researcher from public district series", "", _S_ASSEMBLED),
        "year": RealColumn("year", "U", "year of the series", "", _S_ASSEMBLED),
        "density": RealColumn("density", "U", "e.g. jobs per km2", "", _S_ASSEMBLED),
        "transport_access": RealColumn("transport_access", "U", "e.g. DfT journey-time statistics", "", _S_ASSEMBLED),
        "housing_cost": RealColumn("housing_cost", "U", "e.g. ONS house-price-to-earnings ratio", "", _S_ASSEMBLED),
        "amenities": RealColumn("amenities", "U", "an amenity index", "", _S_ASSEMBLED),
    },
    "cpi": {
        "year": RealColumn("year", "U", "calendar year", "", _S_CPI),
        "cpih": RealColumn("cpih", "U", "ONS CPIH annual index (2015 = 100): series L522 of dataset MM23, 'CPIH "
                           "INDEX 00: ALL ITEMS 2015=100', in a table you assemble", "", _S_CPI),
    },
}


def real_data_columns() -> pd.DataFrame:
    """:data:`REAL_DATA_COLUMNS` as a table: ``table``, ``column`` (package), ``real`` (name or SQL expression),
    ``status`` (``V`` verified against the cited document, ``U`` unverified), ``note``, ``citation`` (for ``V``:
    document, section or page, address) and ``searched`` (what was searched and found).

    Pass ``{table: {column: real}}`` (:func:`real_data_mapping`) as ``build_panel(..., columns=...)`` after checking
    each ``U`` row against the data dictionary of the extract."""
    rows = [(table, col, *entry) for table, cols in REAL_DATA_COLUMNS.items() for col, entry in cols.items()]
    return pd.DataFrame(rows, columns=["table", "column", *RealColumn._fields])


def real_data_mapping() -> dict[str, dict[str, str]]:
    """:data:`REAL_DATA_COLUMNS` in the form ``build_panel(columns=...)`` takes."""
    return {t: {c: v.real for c, v in cols.items()} for t, cols in REAL_DATA_COLUMNS.items()}
