// pgjdbc DatabaseMetaData and a typed PreparedStatement, one connection per step (its
// ApplicationName labels the statements in the server log). Run by bench/compat_corpus.py.
import java.sql.*;
import java.util.Properties;

public class MetaCapture {
  static String url;

  static Connection open(String step) throws SQLException {
    Properties p = new Properties();
    p.setProperty("user", "postgres");
    p.setProperty("ApplicationName", "pgjdbc:" + step);
    return DriverManager.getConnection(url, p);
  }

  static int drain(ResultSet r) throws SQLException {
    int n = 0;
    ResultSetMetaData md = r.getMetaData();
    while (r.next()) {
      for (int i = 1; i <= md.getColumnCount(); i++) r.getObject(i);
      n++;
    }
    r.close();
    return n;
  }

  public static void main(String[] a) throws Exception {
    url = a[0];
    try (Connection c = open("getCatalogs")) { System.out.println("getCatalogs " + drain(c.getMetaData().getCatalogs())); }
    try (Connection c = open("getSchemas")) { System.out.println("getSchemas " + drain(c.getMetaData().getSchemas())); }
    try (Connection c = open("getTableTypes")) { System.out.println("getTableTypes " + drain(c.getMetaData().getTableTypes())); }
    try (Connection c = open("getTables")) {
      DatabaseMetaData m = c.getMetaData();
      System.out.println("getTables " + drain(m.getTables(null, null, "%", new String[] {"TABLE", "VIEW"})));
      System.out.println("getTables " + drain(m.getTables(null, null, "store%", null)));
    }
    try (Connection c = open("getColumns")) {
      DatabaseMetaData m = c.getMetaData();
      System.out.println("getColumns " + drain(m.getColumns(null, null, "cc_emp", "%")));
      System.out.println("getColumns " + drain(m.getColumns(null, null, "store_sales", "%")));
      System.out.println("getColumns " + drain(m.getColumns(null, null, "%", "%")));
    }
    try (Connection c = open("getPrimaryKeys")) {
      DatabaseMetaData m = c.getMetaData();
      System.out.println("getPrimaryKeys " + drain(m.getPrimaryKeys(null, null, "cc_emp")));
      System.out.println("getPrimaryKeys " + drain(m.getPrimaryKeys(null, null, "item")));
    }
    try (Connection c = open("getImportedKeys")) {
      DatabaseMetaData m = c.getMetaData();
      System.out.println("getImportedKeys " + drain(m.getImportedKeys(null, null, "cc_emp")));
      System.out.println("getExportedKeys " + drain(m.getExportedKeys(null, null, "cc_dept")));
    }
    try (Connection c = open("getIndexInfo")) {
      DatabaseMetaData m = c.getMetaData();
      System.out.println("getIndexInfo " + drain(m.getIndexInfo(null, null, "cc_emp", false, true)));
      System.out.println("getIndexInfo " + drain(m.getIndexInfo(null, null, "cc_dept", true, false)));
    }
    try (Connection c = open("getTypeInfo")) { System.out.println("getTypeInfo " + drain(c.getMetaData().getTypeInfo())); }
    try (Connection c = open("PreparedStatement")) {
      try (PreparedStatement ps = c.prepareStatement(
          "SELECT ss_item_sk, ss_ticket_number, ss_net_paid FROM store_sales WHERE ss_item_sk = ? ORDER BY 2 LIMIT 5")) {
        ps.setInt(1, 1);
        System.out.println("prepared " + drain(ps.executeQuery()));
      }
      try (PreparedStatement ps = c.prepareStatement("SELECT e_name, e_salary FROM cc_emp WHERE e_name = ? OR e_salary > ?")) {
        ps.setString(1, "ann");
        ps.setBigDecimal(2, new java.math.BigDecimal("100.50"));
        System.out.println("prepared " + drain(ps.executeQuery()));
      }
    }
    try (Connection c = open("ResultSetMetaData")) {
      ResultSet r = c.createStatement().executeQuery("SELECT e_id, e_name, e_dept FROM cc_emp");
      ResultSetMetaData md = r.getMetaData();
      for (int i = 1; i <= md.getColumnCount(); i++) {
        md.isNullable(i);
        md.isAutoIncrement(i);
        md.getColumnTypeName(i);
        md.getTableName(i);
      }
      System.out.println("rsmd " + drain(r));
    }
  }
}
